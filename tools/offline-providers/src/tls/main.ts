// Entry point of the offline stand-in for the pulumi-resource-tls plugin.
// See docs/offline-providers.md: used only where the official plugin cannot be installed.

import * as pulumiProvider from "@pulumi/pulumi/provider";
import { EngineLogger, engineAddressFromArgs } from "../common/engine";
import { makeProvider, requireNode22 } from "../common/serve";
import { TlsHandler } from "./handler";
import { CERT_REQUEST, LOCALLY_SIGNED_CERT, PRIVATE_KEY, SELF_SIGNED_CERT, SPECS } from "./logic";

/** The version the @pulumi/tls 5.6.1 SDK asks the engine for. */
export const TLS_PLUGIN_VERSION = "5.6.1";

/** A small schema describing what the stand-in implements (input names only). */
export const TLS_SCHEMA = JSON.stringify({
    name: "tls",
    version: TLS_PLUGIN_VERSION,
    description: "Offline stand-in for the Pulumi TLS provider (PrivateKey, SelfSignedCert, CertRequest, LocallySignedCert).",
    resources: Object.fromEntries(
        Object.entries(SPECS).map(([token, spec]) => [
            token,
            {
                inputProperties: Object.fromEntries(spec.inputs.map((k) => [k, { $ref: "pulumi.json#/Any" }])),
                requiredInputs: spec.required,
            },
        ]),
    ),
});

export async function serve(args: string[]): Promise<void> {
    const handler = new TlsHandler(new EngineLogger(engineAddressFromArgs(args)));
    const p = makeProvider(TLS_PLUGIN_VERSION, { [PRIVATE_KEY]: handler, [SELF_SIGNED_CERT]: handler, [CERT_REQUEST]: handler, [LOCALLY_SIGNED_CERT]: handler }, { schema: TLS_SCHEMA });
    await pulumiProvider.main(p, args);
}

if (require.main === module) {
    requireNode22();
    serve(process.argv.slice(2)).catch((e: Error) => {
        process.stderr.write(`pulumi-resource-tls (offline stand-in): ${e.stack ?? e.message}\n`);
        process.exit(1);
    });
}
