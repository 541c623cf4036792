/**
 * The program under mocks with credentialed mirrors: root/pypi behind a company proxy and a
 * second registry as a mirror index, both with basic credentials, and a user index on both.
 * devpi is given loopback URLs only; the credentials go to the proxy step's secret stdin.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { basicAuthorization } from "../../components/nginx/mirrorProxy";
import { Registered, runProgramUnderMocks, TEST_HOST_KEY as HOST_KEY, TEST_SSH_KEY as KEY, value } from "./programUnderMocks";

let registered = new Map<string, Registered>();
let secretInputs = new Map<string, Promise<Record<string, boolean>>>();

before(async () => {
    ({ registered, secretInputs } = await runProgramUnderMocks(
        {
            "devpi:host": "203.0.113.10",
            "devpi:sshPrivateKey": KEY,
            "devpi:hostKey": HOST_KEY,
            "devpi:domain": "devpi.example.com",
            "devpi:rootPassword": "root-secret-1",
            "devpi:users": JSON.stringify({ bz: { password: "bz-secret-1" } }),
            "devpi:indexes": JSON.stringify({
                "root/pypi": { mirror_url: "https://art.example.com/api/pypi/pypi/simple/", mirror_username: "ci", mirror_password: "art-secret-1" },
                "root/gitlab": { type: "mirror", mirror_url: "https://gitlab.example.com/api/v4/groups/7/-/packages/pypi/simple/", mirror_username: "deploy", mirror_password: "gl-secret-1" },
                "bz/dev": { bases: ["root/gitlab", "root/pypi"] },
            }),
        },
        ["devpi:sshPrivateKey", "devpi:rootPassword", "devpi:users", "devpi:indexes"],
    ));
});

const stdinOf = (name: string) => value<string>(registered.get(name)!.inputs.stdin);

describe("credentialed mirrors under mocks", () => {
    it("adds one proxy step after nginx, which the mirror indexes wait for", () => {
        assert.equal(registered.get("mirror-proxy")?.type, "devpi:index:MirrorProxy");
        assert.deepEqual(registered.get("mirror-proxy")?.dependsOn, ["nginx"]);
        assert.deepEqual(registered.get("index-root/gitlab")?.dependsOn.sort(), ["mirror-proxy", "root-password"]);
        assert.deepEqual(registered.get("index-bz/dev")?.dependsOn.sort(), ["index-root/gitlab", "index-root/pypi", "user-bz"]);
    });

    it("gives devpi the loopback proxies, never the upstream or its credentials", async () => {
        const pypi = await stdinOf("index-root/pypi-index");
        const gitlab = await stdinOf("index-root/gitlab-index");
        assert.match(gitlab, /\{"mirror_url":"http:\/\/127\.0\.0\.1:4140\/api\/v4\/groups\/7\/-\/packages\/pypi\/simple\/","mirror_no_project_list":true\}$/);
        assert.match(pypi, /\{"mirror_url":"http:\/\/127\.0\.0\.1:4141\/api\/pypi\/pypi\/simple\/","mirror_no_project_list":true\}$/);
        for (const s of [pypi, gitlab]) assert.doesNotMatch(s, /secret-1|ci:|deploy:/);
    });

    it("hands the credentials to the proxy step only, on its secret stdin, with its logging off", async () => {
        const stdin = await stdinOf("mirror-proxy-proxy");
        assert.ok(stdin.endsWith(`root+gitlab.conf\t${basicAuthorization("deploy", "gl-secret-1")}\nroot+pypi.conf\t${basicAuthorization("ci", "art-secret-1")}\n`));
        const flags = await secretInputs.get("mirror-proxy-proxy")!;
        assert.equal(flags.stdin, true);
        assert.equal(registered.get("mirror-proxy-proxy")?.inputs.logging, "none");
        for (const r of registered.values()) {
            if (r.type !== "command:remote:Command") continue;
            const create = await new Promise<string>((res) => pulumi.output(r.inputs.create as string).apply(res));
            for (const secret of ["art-secret-1", "gl-secret-1", basicAuthorization("ci", "art-secret-1")]) assert.ok(!create.includes(secret), `${r.name} create must not contain it`);
            if (r.name !== "mirror-proxy-proxy" && r.inputs.stdin !== undefined) {
                const s = await stdinOf(r.name);
                assert.ok(!s.includes("art-secret-1") && !s.includes(basicAuthorization("ci", "art-secret-1")), `${r.name} stdin must not carry the mirror's credentials`);
            }
        }
    });
});
