import * as pulumi from "@pulumi/pulumi";
import { RemoteHost, remoteStep } from "../common/remoteStep";
import { renderSupervisorProgram, renderSupervisorRemoveScript, renderSupervisorScript, SupervisorProgramSettings } from "./supervisorConfig";

export interface SupervisorProgramArgs {
    host: RemoteHost;
    program: SupervisorProgramSettings;
    /** devpi-server's loopback URL, polled until it answers after a (re)start. */
    devpiUrl: string;
    /** Any change (versions, devpi config) restarts devpi-server. */
    restartToken: pulumi.Input<string>;
    /**
     * Seconds to wait for devpi-server to answer. Default 600: a first start on a small server
     * (devpi-web builds its templates) can take minutes; a program that keeps exiting ends the
     * wait at once (supervisor marks it FATAL).
     */
    readyTimeout?: number;
}

/**
 * `/etc/supervisor/conf.d/NAME.conf` running devpi-server as the service user, logging to
 * /var/log/supervisor/NAME.log. (Re)starts devpi-server when its program section or the restart
 * token changes and waits until it answers; on destroy stops it and removes the section.
 */
export class SupervisorProgram extends pulumi.ComponentResource {
    public readonly confPath: string;
    public readonly logFile: string;
    /** Resolves once devpi-server answers on loopback. */
    public readonly running: pulumi.Output<string>;

    constructor(name: string, args: SupervisorProgramArgs, opts?: pulumi.ComponentResourceOptions) {
        super("devpi:index:SupervisorProgram", name, {}, opts);
        this.confPath = `/etc/supervisor/conf.d/${args.program.name}.conf`;
        this.logFile = args.program.logFile;
        const program = renderSupervisorProgram(args.program);
        const step = remoteStep(
            `${name}-program`,
            args.host,
            {
                create: renderSupervisorScript({
                    name: args.program.name,
                    confPath: this.confPath,
                    program,
                    devpiUrl: args.devpiUrl,
                    logFile: args.program.logFile,
                    readyTimeout: args.readyTimeout ?? 600,
                }),
                rerunWhen: { label: "restart token", value: args.restartToken },
                delete: renderSupervisorRemoveScript({ name: args.program.name, confPath: this.confPath }),
            },
            { parent: this },
        );
        this.running = step.stdout;
        this.registerOutputs({ running: this.running });
    }
}
