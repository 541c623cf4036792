// Table tests of the plan logic of the offline stand-in providers
// (tools/offline-providers): which change is an update, a replacement or
// nothing; connection defaults; the certificate renewal window.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
    LineSplitter,
    checkCommand,
    checkLocalCommand,
    commandError,
    diffCommand,
    diffLocalCommand,
    goQuote,
    previousOutputEnv,
    shouldLog,
    updateCommandKey,
} from "../../tools/offline-providers/src/command/logic";
import { goCommandPath, goEnviron, goExitError } from "../../tools/offline-providers/src/command/exec";
import { localArgs } from "../../tools/offline-providers/src/command/local";
import { dialWithRetry, joinHostPort, parseConnection, prepareAuth } from "../../tools/offline-providers/src/command/ssh";
import { UNKNOWN, secret } from "../../tools/offline-providers/src/common/props";
import {
    CERT_REQUEST,
    LOCALLY_SIGNED_CERT,
    PRIVATE_KEY,
    SELF_SIGNED_CERT,
    checkTls,
    diffTls,
    inRenewalWindow,
    plannedReadyForRenewal,
    refreshTls,
    rfc3339,
} from "../../tools/offline-providers/src/tls/logic";

describe("command:remote:Command diff", () => {
    const connection = secret({ host: "10.0.0.1", port: 22, user: "root", dialErrorLimit: 10, perDialTimeout: 15, privateKey: "KEY" });
    const base = { connection, create: "make", update: "remake", delete: "clean", environment: { A: "1" }, stdin: "in", triggers: ["t1"], logging: "stdout" };
    const state = { ...base, stdout: "out", stderr: "err" };

    const cases: [string, Record<string, unknown>, { changes: boolean; replaces: string[] }][] = [
        ["nothing changed", base, { changes: false, replaces: [] }],
        ["only secretness of the connection changed", { ...base, connection: (connection as { value: unknown }).value }, { changes: false, replaces: [] }],
        ["create changed", { ...base, create: "make2" }, { changes: true, replaces: [] }],
        ["update changed", { ...base, update: "x" }, { changes: true, replaces: [] }],
        ["update removed", { ...base, update: undefined }, { changes: true, replaces: [] }],
        ["delete changed", { ...base, delete: "x" }, { changes: true, replaces: [] }],
        ["stdin changed", { ...base, stdin: "x" }, { changes: true, replaces: [] }],
        ["environment changed", { ...base, environment: { A: "2" } }, { changes: true, replaces: [] }],
        ["logging changed", { ...base, logging: "none" }, { changes: true, replaces: [] }],
        ["addPreviousOutputInEnv set explicitly", { ...base, addPreviousOutputInEnv: true }, { changes: true, replaces: [] }],
        ["connection host changed (upstream: update)", { ...base, connection: secret({ ...(connection as { value: object }).value, host: "10.0.0.2" }) }, { changes: true, replaces: [] }],
        ["connection key changed (upstream: update)", { ...base, connection: secret({ ...(connection as { value: object }).value, privateKey: "K2" }) }, { changes: true, replaces: [] }],
        ["triggers changed", { ...base, triggers: ["t2"] }, { changes: true, replaces: ["triggers"] }],
        ["triggers added", { ...base, triggers: ["t1", "t3"] }, { changes: true, replaces: ["triggers"] }],
        ["triggers unknown (preview)", { ...base, triggers: [UNKNOWN] }, { changes: true, replaces: ["triggers"] }],
        ["create unknown (preview)", { ...base, create: UNKNOWN }, { changes: true, replaces: [] }],
        ["triggers and create changed", { ...base, create: "x", triggers: [] }, { changes: true, replaces: ["triggers"] }],
    ];
    for (const [name, news, want] of cases) {
        it(name, () => {
            const d = diffCommand(state, news);
            assert.deepEqual({ changes: d.changes, replaces: d.replaces }, want);
            assert.equal(d.deleteBeforeReplace, false, "deleteBeforeReplace is the resource option's business");
        });
    }

    it("stdout/stderr in the old state are not inputs", () => {
        assert.equal(diffCommand({ ...state, stdout: "other" }, base).changes, false);
    });
});

describe("command:remote:Command check", () => {
    it("applies connection and proxy defaults and keeps unknowns", () => {
        const r = checkCommand({ create: "x", connection: { host: UNKNOWN, proxy: { host: "bastion" } } });
        assert.deepEqual(r.failures, undefined);
        assert.deepEqual(
            (r.inputs as Record<string, unknown>).connection,
            secret({
                host: UNKNOWN,
                user: "root",
                port: 22,
                dialErrorLimit: 10,
                perDialTimeout: 15,
                proxy: { host: "bastion", user: "root", port: 22, dialErrorLimit: 10, perDialTimeout: 15 },
            }),
        );
    });
    it("keeps explicit values", () => {
        const r = checkCommand({ connection: secret({ host: "h", user: "deploy", port: 2222, dialErrorLimit: -1, perDialTimeout: 0 }) });
        assert.deepEqual((r.inputs as Record<string, unknown>).connection, secret({ host: "h", user: "deploy", port: 2222, dialErrorLimit: -1, perDialTimeout: 0 }));
    });
    it("an unknown connection passes through", () => {
        assert.deepEqual((checkCommand({ connection: UNKNOWN }).inputs as Record<string, unknown>).connection, secret(UNKNOWN));
    });
    it("requires connection and connection.host", () => {
        assert.equal(checkCommand({ create: "x" }).failures?.[0].property, "connection");
        assert.equal(checkCommand({ connection: { port: 22 } }).failures?.[0].property, "connection.host");
    });
});

describe("command helpers", () => {
    it("goQuote matches strconv.Quote", () => {
        assert.equal(goQuote(`a "b" \\ c`), `"a \\"b\\" \\\\ c"`);
        assert.equal(goQuote("x\ny\tz\x01\x7f"), `"x\\ny\\tz\\x01\\x7f"`);
        assert.equal(goQuote("é✓"), `"é✓"`);
        // Outputs of Go 1.26's strconv.Quote for the same strings.
        assert.equal(goQuote("nbsp\u00a0shy\u00adzw\u200bls\u2028bom\ufeff"), `"nbsp\\u00a0shy\\u00adzw\\u200bls\\u2028bom\\ufeff"`);
        assert.equal(goQuote("emoji😀 tag\u{e0001} c1\u0085"), `"emoji😀 tag\\U000e0001 c1\\u0085"`);
    });
    it("commandError has upstream's shape", () => {
        assert.equal(commandError("Process exited with status 2", "false", "out\n", false), 'Process exited with status 2: running "false":\nout\n');
        assert.equal(commandError("Process exited with status 2", "pw", "", true), "Process exited with status 2: running [secret]:\n");
    });
    it("logging defaults to both streams", () => {
        assert.deepEqual(shouldLog(undefined), { stdout: true, stderr: true });
        assert.deepEqual(shouldLog("stdout"), { stdout: true, stderr: false });
        assert.deepEqual(shouldLog("stderr"), { stdout: false, stderr: true });
        assert.deepEqual(shouldLog("none"), { stdout: false, stderr: false });
    });
    it("parseConnection applies defaults", () => {
        assert.deepEqual(parseConnection({ host: "h" }), {
            host: "h",
            port: 22,
            user: "root",
            password: undefined,
            privateKey: undefined,
            privateKeyPassword: undefined,
            agentSocketPath: undefined,
            dialErrorLimit: 10,
            perDialTimeout: 15,
            hostKey: undefined,
        });
        assert.equal(joinHostPort("::1", 22), "[::1]:22");
    });
    it("a bad private key or host key fails before dialing (no retries), like upstream's SSHConfig", () => {
        const base = parseConnection({ host: "h" });
        assert.throws(() => prepareAuth({ ...base, privateKey: "not a key" }), /^Error: ssh: /);
        assert.throws(() => prepareAuth({ ...base, hostKey: "ssh-ed25519" }), /failed to parse host key/);
        assert.deepEqual(
            prepareAuth({ ...base, password: "pw", agentSocketPath: "/tmp/agent.sock" }).methods.map((m) => m.type),
            ["none", "password", "keyboard-interactive", "agent"],
        );
    });
    it("dialWithRetry: a limit of N allows N+1 attempts, -1 is unlimited", async () => {
        const delays = { initial: 1, backoff: 1, max: 1 };
        let calls = 0;
        const status: string[] = [];
        await assert.rejects(
            dialWithRetry("Dial", 3, { delays, status: (m) => status.push(m) }, () => {
                calls++;
                return Promise.reject(new Error("boom"));
            }),
            /^Error: after 3 failed attempts: boom$/,
        );
        assert.equal(calls, 4);
        assert.deepEqual(status, ["Dial 1/3 failed: retrying", "Dial 2/3 failed: retrying", "Dial 3/3 failed: retrying"]);
        calls = 0;
        const v = await dialWithRetry("Dial", -1, { delays }, () => (++calls < 20 ? Promise.reject(new Error("not yet")) : Promise.resolve("ok")));
        assert.equal(v, "ok");
    });
});

describe("command:local:Command diff", () => {
    const base = {
        create: "make",
        update: "remake",
        delete: "clean",
        interpreter: ["/bin/bash", "-c"],
        dir: "/srv",
        environment: { A: "1" },
        stdin: "in",
        triggers: ["t1"],
        logging: "stdout",
    };
    const state = { ...base, stdout: "out", stderr: "err" };
    const cases: [string, Record<string, unknown>, { changes: boolean; replaces: string[] }][] = [
        ["nothing changed", base, { changes: false, replaces: [] }],
        ["only secretness of environment changed", { ...base, environment: secret({ A: "1" }) }, { changes: false, replaces: [] }],
        ["create changed", { ...base, create: "make2" }, { changes: true, replaces: [] }],
        ["update removed", { ...base, update: undefined }, { changes: true, replaces: [] }],
        ["delete changed", { ...base, delete: "x" }, { changes: true, replaces: [] }],
        ["interpreter changed", { ...base, interpreter: ["/bin/sh", "-c"] }, { changes: true, replaces: [] }],
        ["interpreter removed", { ...base, interpreter: undefined }, { changes: true, replaces: [] }],
        ["dir changed", { ...base, dir: "/tmp" }, { changes: true, replaces: [] }],
        ["environment changed", { ...base, environment: { A: "2" } }, { changes: true, replaces: [] }],
        ["stdin changed", { ...base, stdin: "x" }, { changes: true, replaces: [] }],
        ["logging changed", { ...base, logging: "none" }, { changes: true, replaces: [] }],
        ["addPreviousOutputInEnv set explicitly", { ...base, addPreviousOutputInEnv: true }, { changes: true, replaces: [] }],
        ["triggers changed", { ...base, triggers: ["t2"] }, { changes: true, replaces: ["triggers"] }],
        ["triggers unknown (preview)", { ...base, triggers: [UNKNOWN] }, { changes: true, replaces: ["triggers"] }],
        ["dir unknown (preview)", { ...base, dir: UNKNOWN }, { changes: true, replaces: [] }],
        ["a remote-only input is not an input here", { ...base, connection: { host: "h" } }, { changes: false, replaces: [] }],
    ];
    for (const [name, news, want] of cases) {
        it(name, () => {
            const d = diffLocalCommand(state, news);
            assert.deepEqual({ changes: d.changes, replaces: d.replaces }, want);
            assert.equal(d.deleteBeforeReplace, false);
        });
    }
    it("stdout/stderr in the old state are not inputs", () => {
        assert.equal(diffLocalCommand({ ...state, stdout: "other", stderr: "x" }, base).changes, false);
    });
});

describe("command:local:Command check and run rules", () => {
    it("check passes inputs through and refuses assetPaths/archivePaths, even empty or unknown", () => {
        assert.deepEqual(checkLocalCommand({ create: "x", dir: UNKNOWN }), { inputs: { create: "x", dir: UNKNOWN } });
        assert.deepEqual(
            checkLocalCommand({ create: "x", assetPaths: [] }).failures?.map((f) => f.property),
            ["assetPaths"],
        );
        assert.deepEqual(
            checkLocalCommand({ archivePaths: UNKNOWN }).failures?.map((f) => f.property),
            ["archivePaths"],
        );
        assert.equal(checkLocalCommand({ assetPaths: null }).failures, undefined, "null is unset");
    });
    it("update runs update, else create, else nothing (an empty string is set)", () => {
        assert.equal(updateCommandKey({ create: "c", update: "u" }), "update");
        assert.equal(updateCommandKey({ create: "c", update: "" }), "update");
        assert.equal(updateCommandKey({ create: "c" }), "create");
        assert.equal(updateCommandKey({ delete: "d" }), undefined);
    });
    it("PULUMI_COMMAND_STDOUT/STDERR: only non-empty previous outputs, unless addPreviousOutputInEnv is false", () => {
        assert.deepEqual(previousOutputEnv({ stdout: "o", stderr: "e" }), [
            ["PULUMI_COMMAND_STDOUT", "o"],
            ["PULUMI_COMMAND_STDERR", "e"],
        ]);
        assert.deepEqual(previousOutputEnv({ stdout: secret("o"), stderr: "" }), [["PULUMI_COMMAND_STDOUT", "o"]]);
        assert.deepEqual(previousOutputEnv({ stdout: "o", addPreviousOutputInEnv: false }), []);
        assert.deepEqual(previousOutputEnv({ stdout: "o", addPreviousOutputInEnv: true }), [["PULUMI_COMMAND_STDOUT", "o"]]);
    });
    it("interpreter: set and non-empty replaces /bin/sh -c", () => {
        assert.deepEqual(localArgs(undefined, "ls"), ["/bin/sh", "-c", "ls"]);
        assert.deepEqual(localArgs([], "ls"), ["/bin/sh", "-c", "ls"]);
        assert.deepEqual(localArgs(["python3", "-c"], "print(1)"), ["python3", "-c", "print(1)"]);
        assert.throws(() => localArgs("bash", "ls"), /interpreter must be a list of strings/);
    });
    it("output lines follow bufio.ScanLines over the interleaved streams", () => {
        const s = new LineSplitter();
        assert.deepEqual(s.push(Buffer.from("a\r\nb")), ["a"]);
        assert.deepEqual(s.push(Buffer.from([0x63, 0x0a, 0x0a, 0xc3])), ["bc", ""], "a character split across chunks stays whole");
        assert.deepEqual(s.push(Buffer.from([0xa9, 0x78, 0x0d])), []);
        assert.deepEqual(s.end(), ["éx"]);
        assert.deepEqual(s.end(), []);
    });
});

describe("Go os/exec behaviour of the local stand-in", () => {
    it("exec.Command name resolution and its errors", () => {
        assert.deepEqual(goCommandPath("sh", "/nonexistent:/bin"), { path: "/bin/sh" });
        assert.deepEqual(goCommandPath("/no/such"), { path: "/no/such", error: undefined }, "a path is not looked up");
        assert.deepEqual(goCommandPath("./rel"), { path: "./rel", error: undefined });
        assert.deepEqual(goCommandPath("sh", ""), { path: "sh", error: 'exec: "sh": executable file not found in $PATH' }, "empty PATH: no entries");
        assert.deepEqual(goCommandPath(""), { path: "", error: "exec: no command" });
        assert.deepEqual(goCommandPath(".."), { path: "..", error: 'exec: "..": executable file not found in $PATH' });
        assert.deepEqual(goCommandPath("tmp", "/"), { path: "tmp", error: 'exec: "tmp": executable file not found in $PATH' }, "directories are skipped");
    });
    it("a relative PATH match is refused (exec.ErrDot)", () => {
        const cwd = process.cwd();
        process.chdir("/");
        try {
            assert.deepEqual(goCommandPath("sh", "bin"), { path: "bin/sh", error: 'exec: "sh": cannot run executable found relative to current directory' });
        } finally {
            process.chdir(cwd);
        }
    });
    it("environ: provider environment, then additions; the last duplicate wins; NUL is an error", () => {
        assert.deepEqual(
            goEnviron({ A: "base", B: "b" }, [
                ["A", "env"],
                ["C", "c"],
                ["A", "last"],
            ]).env,
            { B: "b", C: "c", A: "last" },
        );
        assert.deepEqual(goEnviron({ A: "base" }, [["A=B", "x"]]).env, { A: "B=x" }, "a key with '=' is split at the first '=', as Go does");
        assert.deepEqual(goEnviron({ P: "1" }, [["X", "a\0b"]]), { env: { P: "1" }, error: "exec: environment variable contains NUL" });
    });
    it("exit errors read like ProcessState.String", () => {
        assert.equal(goExitError(0, null), undefined);
        assert.equal(goExitError(2, null), "exit status 2");
        assert.equal(goExitError(null, "SIGKILL"), "signal: killed");
        assert.equal(goExitError(null, "SIGTERM"), "signal: terminated");
        assert.equal(goExitError(null, "SIGSEGV"), "signal: segmentation fault");
        assert.equal(goExitError(null, "SIGUSR1"), "signal: user defined signal 1");
    });
});

describe("tls diff", () => {
    const now = new Date("2030-06-01T00:00:00Z");
    const keyState = {
        algorithm: "ED25519",
        rsaBits: 2048,
        ecdsaCurve: "P224",
        privateKeyPem: secret("PEM"),
        publicKeyPem: "PUB",
    };
    const certInputs = {
        privateKeyPem: secret("-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----\n"),
        validityPeriodHours: 8760,
        allowedUses: ["cert_signing", "crl_signing"],
        isCaCertificate: true,
        subject: { commonName: "CA" },
    };
    const certState = {
        ...certInputs,
        earlyRenewalHours: 0,
        setSubjectKeyId: false,
        setAuthorityKeyId: false,
        certPem: "CERT",
        keyAlgorithm: "ED25519",
        validityStartTime: "2030-01-01T00:00:00Z",
        validityEndTime: "2031-01-01T00:00:00Z",
        readyForRenewal: false,
    };

    const cases: [string, string, Record<string, unknown>, Record<string, unknown>, { changes: boolean; replaces: string[] }][] = [
        ["key: nothing changed (defaults equal state)", PRIVATE_KEY, keyState, { algorithm: "ED25519" }, { changes: false, replaces: [] }],
        ["key: explicit default is no change", PRIVATE_KEY, keyState, { algorithm: "ED25519", rsaBits: 2048 }, { changes: false, replaces: [] }],
        ["key: algorithm changed", PRIVATE_KEY, keyState, { algorithm: "RSA" }, { changes: true, replaces: ["algorithm"] }],
        ["key: rsaBits changed", PRIVATE_KEY, keyState, { algorithm: "ED25519", rsaBits: 4096 }, { changes: true, replaces: ["rsaBits"] }],
        ["key: algorithm unknown", PRIVATE_KEY, keyState, { algorithm: UNKNOWN }, { changes: true, replaces: ["algorithm"] }],
        ["cert: nothing changed", SELF_SIGNED_CERT, certState, certInputs, { changes: false, replaces: [] }],
        ["cert: private key changed", SELF_SIGNED_CERT, certState, { ...certInputs, privateKeyPem: secret("OTHER") }, { changes: true, replaces: ["privateKeyPem"] }],
        ["cert: private key unknown (its key is being replaced)", SELF_SIGNED_CERT, certState, { ...certInputs, privateKeyPem: UNKNOWN }, { changes: true, replaces: ["privateKeyPem"] }],
        ["cert: validity changed", SELF_SIGNED_CERT, certState, { ...certInputs, validityPeriodHours: 100 }, { changes: true, replaces: ["validityPeriodHours"] }],
        ["cert: uses reordered", SELF_SIGNED_CERT, certState, { ...certInputs, allowedUses: ["crl_signing", "cert_signing"] }, { changes: true, replaces: ["allowedUses"] }],
        ["cert: subject changed", SELF_SIGNED_CERT, certState, { ...certInputs, subject: { commonName: "CA2" } }, { changes: true, replaces: ["subject"] }],
        ["cert: dnsNames [] equals unset", SELF_SIGNED_CERT, certState, { ...certInputs, dnsNames: [] }, { changes: false, replaces: [] }],
        ["cert: dnsNames added", SELF_SIGNED_CERT, certState, { ...certInputs, dnsNames: ["a"] }, { changes: true, replaces: ["dnsNames"] }],
        ["cert: earlyRenewalHours changed is an in-place update", SELF_SIGNED_CERT, certState, { ...certInputs, earlyRenewalHours: 24 }, { changes: true, replaces: [] }],
        ["cert: earlyRenewalHours reaching into now replaces", SELF_SIGNED_CERT, certState, { ...certInputs, earlyRenewalHours: 24 * 365 }, { changes: true, replaces: ["readyForRenewal"] }],
        ["cert: isCaCertificate default false vs true", SELF_SIGNED_CERT, certState, { ...certInputs, isCaCertificate: undefined }, { changes: true, replaces: ["isCaCertificate"] }],
        ["cert: maxPathLength unset keeps state", SELF_SIGNED_CERT, { ...certState, maxPathLength: 2 }, certInputs, { changes: false, replaces: [] }],
        ["cert: maxPathLength set", SELF_SIGNED_CERT, certState, { ...certInputs, maxPathLength: 1 }, { changes: true, replaces: ["maxPathLength"] }],
        ["cert: expired", SELF_SIGNED_CERT, { ...certState, validityEndTime: "2030-05-31T23:59:59Z" }, certInputs, { changes: true, replaces: ["readyForRenewal"] }],
        [
            "cert: refreshed readyForRenewal plus a validity change replaces for the validity change",
            SELF_SIGNED_CERT,
            { ...certState, readyForRenewal: true },
            { ...certInputs, validityPeriodHours: 1 },
            { changes: true, replaces: ["validityPeriodHours"] },
        ],
        ["cert: refreshed readyForRenewal but window not reached any more is an update", SELF_SIGNED_CERT, { ...certState, readyForRenewal: true }, certInputs, { changes: true, replaces: [] }],
        [
            "locally signed: CSR changed",
            LOCALLY_SIGNED_CERT,
            {
                certRequestPem: "A",
                caPrivateKeyPem: secret("K"),
                caCertPem: "C",
                validityPeriodHours: 1,
                allowedUses: [],
                earlyRenewalHours: 0,
                isCaCertificate: false,
                setSubjectKeyId: false,
                validityEndTime: "2031-01-01T00:00:00Z",
            },
            { certRequestPem: "B", caPrivateKeyPem: "K", caCertPem: "C", validityPeriodHours: 1, allowedUses: [] },
            { changes: true, replaces: ["certRequestPem"] },
        ],
        ["cert request: dns names changed", CERT_REQUEST, { privateKeyPem: secret("K"), dnsNames: ["a"] }, { privateKeyPem: "K", dnsNames: ["b"] }, { changes: true, replaces: ["dnsNames"] }],
        ["cert request: nothing changed", CERT_REQUEST, { privateKeyPem: secret("K"), dnsNames: ["a"] }, { privateKeyPem: "K", dnsNames: ["a"] }, { changes: false, replaces: [] }],
    ];
    for (const [name, type, olds, news, want] of cases) {
        it(name, () => {
            const d = diffTls(type, olds, Object.fromEntries(Object.entries(news).filter(([, v]) => v !== undefined)), now);
            assert.deepEqual({ changes: d.changes, replaces: d.replaces }, want);
        });
    }
});

describe("tls renewal window", () => {
    const end = "2030-01-10T00:00:00Z";
    it("is reached exactly at validityEnd - earlyRenewalHours", () => {
        assert.equal(inRenewalWindow(end, 24, new Date("2030-01-08T23:59:59.999Z")), false);
        assert.equal(inRenewalWindow(end, 24, new Date("2030-01-09T00:00:00Z")), true);
        assert.equal(inRenewalWindow(end, 0, new Date("2030-01-09T23:59:59Z")), false);
        assert.equal(inRenewalWindow(end, 0, new Date(end)), true);
    });
    it("accepts RFC 3339 with fractions and offsets", () => {
        assert.equal(inRenewalWindow("2030-01-10T01:00:00.123+01:00", 0, new Date("2030-01-10T00:00:00.123Z")), true);
    });
    it("refresh (read) flags a certificate in the window", () => {
        const state = { validityEndTime: end, earlyRenewalHours: 48, readyForRenewal: false };
        assert.equal(refreshTls(SELF_SIGNED_CERT, state, new Date("2030-01-07T00:00:00Z")).readyForRenewal, false);
        assert.equal(refreshTls(SELF_SIGNED_CERT, state, new Date("2030-01-08T00:00:00Z")).readyForRenewal, true);
        assert.equal(refreshTls(LOCALLY_SIGNED_CERT, state, new Date("2030-01-08T00:00:00Z")).readyForRenewal, true);
        assert.equal(refreshTls(PRIVATE_KEY, { algorithm: "RSA" }, new Date()).readyForRenewal, undefined);
    });
    it("readyForRenewal is planned true at creation when validity is 0 or fully covered by early renewal", () => {
        assert.equal(plannedReadyForRenewal({ validityPeriodHours: 0, earlyRenewalHours: 0 }), true);
        assert.equal(plannedReadyForRenewal({ validityPeriodHours: 10, earlyRenewalHours: 10 }), true);
        assert.equal(plannedReadyForRenewal({ validityPeriodHours: 10, earlyRenewalHours: 9 }), false);
    });
    it("formats times like Go's MarshalText", () => {
        assert.equal(rfc3339(new Date("2030-01-02T03:04:05.000Z")), "2030-01-02T03:04:05Z");
        assert.equal(rfc3339(new Date("2030-01-02T03:04:05.120Z")), "2030-01-02T03:04:05.12Z");
    });
});

describe("tls check", () => {
    it("validates like the Terraform schema", () => {
        assert.deepEqual(checkTls(PRIVATE_KEY, { algorithm: "ED25519" }).failures, undefined);
        assert.equal(checkTls(PRIVATE_KEY, { algorithm: "DSA" }).failures?.[0].property, "algorithm");
        assert.equal(checkTls(PRIVATE_KEY, { algorithm: "ECDSA", ecdsaCurve: "P999" }).failures?.[0].property, "ecdsaCurve");
        assert.equal(checkTls(PRIVATE_KEY, {}).failures?.[0].property, "algorithm");
        assert.equal(checkTls(PRIVATE_KEY, { algorithm: UNKNOWN }).failures, undefined);
        const cert = { privateKeyPem: "x", validityPeriodHours: 1, allowedUses: ["server_auth", "bogus"] };
        assert.deepEqual(
            checkTls(SELF_SIGNED_CERT, cert).failures?.map((f) => f.property),
            ["allowedUses[1]"],
        );
        assert.deepEqual(
            checkTls(SELF_SIGNED_CERT, { ...cert, allowedUses: [], validityPeriodHours: -1, earlyRenewalHours: -2, maxPathLength: -2 }).failures?.map((f) => f.property),
            ["validityPeriodHours", "earlyRenewalHours", "maxPathLength"],
        );
        assert.deepEqual(
            checkTls(LOCALLY_SIGNED_CERT, { validityPeriodHours: 1 }).failures?.map((f) => f.property),
            ["certRequestPem", "caPrivateKeyPem", "caCertPem", "allowedUses"],
        );
        assert.equal(checkTls(SELF_SIGNED_CERT, { ...cert, allowedUses: [], privateKeyPemWo: "x" }).failures?.[0].property, "privateKeyPemWo");
    });
});
