import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, KNOWN_KEYS, LEGACY_SECRET_FILE, loadConfig, SYSTEM_DIRS } from "../../config";
import { devpiArgsFromConfig } from "../../config/toArgs";
import { localPlugins, resolveDevpiArgs } from "../../components/deployment/resolveArgs";

const KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n";
/** A pinned SSH host key (the shape `ssh-keyscan | cut -d' ' -f2-` prints). */
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGf0c3RIb3N0S2V5Rm9yVW5pdFRlc3Rz";

/** The smallest valid stack config, as the CLI passes it (every value a string). */
function base(): Record<string, string> {
    return {
        host: "203.0.113.10",
        sshPrivateKey: KEY,
        hostKey: HOST_KEY,
        domain: "devpi.example.com",
        rootPassword: "root-secret-1",
        users: JSON.stringify({ bz: { password: "bz-secret-1", email: "bz@example.com" } }),
        indexes: JSON.stringify({ "bz/dev": {} }),
    };
}

function load(values: Record<string, string | undefined>, now?: Date) {
    const v = Object.fromEntries(Object.entries(values).filter(([, x]) => x !== undefined)) as Record<string, string>;
    return loadConfig((k) => v[k], Object.keys(v), now);
}

function rejects(values: Record<string, string | undefined>, ...fragments: (string | RegExp)[]) {
    assert.throws(
        () => load(values),
        (e: unknown) => {
            assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
            for (const f of fragments) {
                if (typeof f === "string") assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${JSON.stringify(f)}`);
                else assert.match(e.message, f);
            }
            return true;
        },
    );
}

describe("loadConfig defaults", () => {
    it("follows the seed where it is sound", () => {
        const c = load(base());
        assert.equal(c.devpi.host, "127.0.0.1");
        assert.equal(c.devpi.port, 4040);
        assert.equal(c.ssl.dir, "/srv/ssl/devpi");
        assert.equal("owner" in c.ssl, false, "the TLS files are root's: no owner to configure");
        assert.deepEqual(c.warnings, []);
        assert.equal(c.ssl.mode, "self-signed");
        assert.equal(c.httpPort, 80);
        assert.equal(c.httpsPort, 443);
        assert.equal(c.ssh.user, "root");
        assert.equal(c.ssh.port, 22);
        assert.equal(c.devpi.restrictModify, "root");
        assert.equal(c.devpi.serverVersion, "6.20.3");
        assert.deepEqual(c.indexes, [
            {
                name: "root/pypi",
                owner: "root",
                index: "pypi",
                type: "mirror",
                bases: [],
                volatile: true,
                aclUpload: [],
                mirrorWhitelist: [],
                mirror: { url: "https://pypi.org/simple/", webUrlFmt: "https://pypi.org/project/{name}/", projectList: false, useExternalUrls: false, ignoreSerialHeader: false },
            },
            { name: "bz/dev", owner: "bz", index: "dev", type: "stage", bases: ["root/pypi"], volatile: false, aclUpload: ["bz"], mirrorWhitelist: [] },
        ]);
        assert.equal(c.clientIndex, "bz/dev");
        assert.equal(c.devpi.venvDir, "/opt/devpi/venv");
        assert.equal(c.devpi.venvVersionsDir, "/opt/devpi/venv.versions");
        assert.equal(c.devpi.serverDir, "/srv/devpi/data");
        assert.equal(c.devpi.configDir, "/etc/devpi");
        assert.equal(c.devpi.secretFile, "/etc/devpi/secret", "in a root-owned directory, no longer /srv/devpi/.secret");
        assert.equal(c.devpi.backupDir, "/srv/devpi/backups");
        assert.equal(c.ssh.hostKey, HOST_KEY);
        assert.deepEqual(c.warnings, []);
    });

    it("expresses the seed's own layout", () => {
        const c = load({
            ...base(),
            serviceUser: "web",
            venvDir: "/home/web/repo/devpi/venv_devpi",
            serverDir: "/home/web/repo/devpi/data",
            backupDir: "/home/web/repo/backup/devpi",
        });
        assert.equal(c.devpi.venvDir, "/home/web/repo/devpi/venv_devpi");
        assert.equal(c.devpi.serverDir, "/home/web/repo/devpi/data");
        assert.equal(c.devpi.serviceUser, "web");
        assert.equal(c.devpi.secretFile, "/etc/devpi/secret");
        // venvDir is in the service user's home (/home/web/repo/devpi): root's virtualenvs go elsewhere.
        assert.equal(c.devpi.venvVersionsDir, "/opt/devpi/versions");
    });

    it("accepts devpi's special principals in acl_upload", () => {
        const c = load({ ...base(), indexes: JSON.stringify({ "bz/dev": { acl_upload: ["bz", ":ANONYMOUS:", ":AUTHENTICATED:"] } }) });
        assert.deepEqual(c.indexes.find((i) => i.name === "bz/dev")?.aclUpload, ["bz", ":ANONYMOUS:", ":AUTHENTICATED:"]);
    });

    it("manages root/pypi's upstream and mirror indexes of other registries, usable as bases", () => {
        const c = load({
            ...base(),
            indexes: JSON.stringify({
                "root/pypi": { mirror_url: "https://proxy.example.com/pypi/simple", mirror_no_project_list: false, mirror_cache_expiry: 600 },
                "root/gitlab": { type: "mirror", mirror_url: "http://127.0.0.1:9/simple/", mirror_allow_http: true, mirror_ignore_serial_header: true, mirror_use_external_urls: true },
                "bz/dev": { bases: ["root/gitlab", "root/pypi"] },
            }),
        });
        const byName = new Map(c.indexes.map((i) => [i.name, i]));
        assert.deepEqual(
            c.indexes.map((i) => i.name),
            ["root/pypi", "root/gitlab", "bz/dev"],
            "root/pypi first",
        );
        assert.deepEqual(byName.get("root/pypi")?.mirror, {
            url: "https://proxy.example.com/pypi/simple",
            webUrlFmt: undefined,
            projectList: true,
            useExternalUrls: false,
            ignoreSerialHeader: false,
            cacheExpiry: 600,
        });
        assert.deepEqual(byName.get("root/gitlab")?.mirror, {
            url: "http://127.0.0.1:9/simple/",
            webUrlFmt: undefined,
            projectList: false,
            useExternalUrls: true,
            ignoreSerialHeader: true,
            cacheExpiry: undefined,
        });
        assert.equal(byName.get("root/gitlab")?.type, "mirror");
        assert.deepEqual(byName.get("bz/dev")?.bases, ["root/gitlab", "root/pypi"]);
        assert.equal(c.clientIndex, "bz/dev", "a mirror is never the default client index");
        assert.equal(load({ ...base(), indexes: JSON.stringify({ "root/gitlab": { type: "mirror", mirror_url: "https://g.example.com/simple/" } }) }).clientIndex, "root/pypi");
    });

    it("hands the component args it accepts on every server version (the stack adapter fills every mirror key)", () => {
        // CI (stop 24) saw a stack with devpiServerVersion 6.14.0 refused by the component: the adapter
        // passes mirror_ignore_serial_header: false, which is what 6.14.0 does anyway.
        for (const version of ["6.0.0", "6.8.0", "6.9.0", "6.14.0", "6.16.0", "6.17.0", "6.20.3"]) {
            const args = devpiArgsFromConfig(load({ ...base(), devpiServerVersion: version }));
            const resolved = resolveDevpiArgs("devpi", args);
            const pypi = resolved.indexes.find((i) => i.name === "root/pypi");
            assert.equal(pypi?.mirror?.projectList, /^6\.[0-8]\./.test(version), `project list on ${version}`);
            assert.equal(pypi?.mirror?.ignoreSerialHeader, false);
        }
        const mirrorOn = (version: string) =>
            devpiArgsFromConfig(
                load({
                    ...base(),
                    devpiServerVersion: version,
                    indexes: JSON.stringify({ "root/x": { type: "mirror", mirror_url: "https://x.example.com/simple/", mirror_ignore_serial_header: true } }),
                }),
            );
        assert.ok(resolveDevpiArgs("devpi", mirrorOn("6.17.0")).indexes.find((i) => i.name === "root/x")?.mirror?.ignoreSerialHeader);
    });

    it("keeps devpi's project list on servers too old to switch it off, and refuses mirror keys they do not know", () => {
        assert.equal(load({ ...base(), devpiServerVersion: "6.8.0" }).indexes[0].mirror?.projectList, true, "6.8.0 has no mirror_no_project_list");
        assert.equal(load({ ...base(), devpiServerVersion: "6.9.0" }).indexes[0].mirror?.projectList, false);
        assert.throws(
            () => load({ ...base(), devpiServerVersion: "6.8.0", indexes: JSON.stringify({ "root/pypi": { mirror_no_project_list: true } }) }),
            /devpi:indexes\.root\/pypi\.mirror_no_project_list: invalid value true: needs devpi-server 6\.9\.0 or newer \(devpiServerVersion is 6\.8\.0\)/,
        );
        assert.throws(
            () =>
                load({
                    ...base(),
                    devpiServerVersion: "6.16.0",
                    indexes: JSON.stringify({ "root/x": { type: "mirror", mirror_url: "https://x.example.com/simple/", mirror_ignore_serial_header: true } }),
                }),
            /devpi:indexes\.root\/x\.mirror_ignore_serial_header: .*needs devpi-server 6\.17\.0/,
        );
    });

    it("treats the empty defaults declared in Pulumi.yaml as unset", () => {
        const c = load({ ...base(), hostKey: "", insecureSkipHostKeyCheck: "true", sslCertificate: "", sslPrivateKey: "", clientIndex: "", pythonPackageIndex: "" });
        assert.equal(c.ssh.hostKey, undefined);
        assert.equal(c.devpi.pythonPackageIndex, undefined);
        rejects({ ...base(), hostKey: "", insecureSkipHostKeyCheck: "false" }, "devpi:hostKey is required");
    });

    it("gives every key in Pulumi.yaml a default but the three a stack must set (Pulumi refuses a stack without a declared key's value)", () => {
        const yaml = fs.readFileSync(path.join(__dirname, "../../Pulumi.yaml"), "utf8");
        const blocks = yaml
            .split(/^config:$/m)[1]
            .split(/^  (?=[a-zA-Z0-9]+:$)/m)
            .slice(1);
        const withoutDefault = blocks.filter((b) => !/^ {4}default:/m.test(b)).map((b) => b.split(":")[0]);
        assert.deepEqual(withoutDefault.sort(), ["domain", "host", "rootPassword"]);
    });

    it("declares every known key in Pulumi.yaml and nothing else", () => {
        const yaml = fs.readFileSync(path.join(__dirname, "../../Pulumi.yaml"), "utf8");
        const declared = [...yaml.matchAll(/^  ([a-zA-Z0-9]+):$/gm)].map((m) => m[1]).filter((k) => k !== "options");
        assert.deepEqual([...declared].sort(), [...KNOWN_KEYS].sort());
    });
});

describe("devpi:sslOwner (the TLS files are root's now)", () => {
    it("accepts root without a word", () => {
        assert.deepEqual(load({ ...base(), sslOwner: "root" }).warnings, []);
    });
    it("still accepts the seed's www-data (or any user), warns, and leaves the files to root", () => {
        for (const owner of ["www-data", "nginx"]) {
            const c = load({ ...base(), sslOwner: owner });
            assert.deepEqual(c.warnings, [`devpi:sslOwner ${owner}: the TLS key is owned by root from now on; remove the setting`]);
            assert.equal("owner" in c.ssl, false);
        }
    });
});

describe("loadConfig rejects bad input before anything runs", () => {
    const cases: [string, Record<string, string | undefined>, ...(string | RegExp)[]][] = [
        ["missing host", { ...base(), host: undefined }, "devpi:host is required"],
        ["bad host", { ...base(), host: "bad host!" }, "devpi:host", '"bad host!"', "host name or an IP"],
        ["missing domain", { ...base(), domain: undefined }, "devpi:domain is required"],
        ["unqualified domain", { ...base(), domain: "devpi" }, "devpi:domain", "fully qualified"],
        ["port out of range", { ...base(), httpsPort: "70000" }, "devpi:httpsPort", "70000", "from 1 to 65535"],
        ["port zero", { ...base(), devpiPort: "0" }, "devpi:devpiPort", "from 1 to 65535"],
        ["port not a number", { ...base(), sshPort: "ssh" }, "devpi:sshPort", '"ssh"', "integer"],
        ["same http and https port", { ...base(), httpPort: "8443", httpsPort: "8443" }, "devpi:httpsPort", "differ"],
        ["missing ssh key", { ...base(), sshPrivateKey: undefined }, "devpi:sshPrivateKey is required"],
        ["ssh key not a key", { ...base(), sshPrivateKey: "hunter2" }, "devpi:sshPrivateKey", "private key"],
        ["unreadable key file", { ...base(), sshPrivateKey: undefined, sshPrivateKeyFile: "/nonexistent/key" }, "devpi:sshPrivateKeyFile", "/nonexistent/key", "readable"],
        ["bad host key", { ...base(), hostKey: "AAAA" }, "devpi:hostKey", "ssh-ed25519"],
        ["unknown key", { ...base(), refresh: "60" }, "devpi:refresh", "unknown configuration key"],
        ["relative path", { ...base(), serverDir: "data" }, "devpi:serverDir", '"data"', "absolute path"],
        ["path with ..", { ...base(), venvDir: "/opt/../etc" }, "devpi:venvDir", "absolute path"],
        ["path with shell characters", { ...base(), sslDir: "/srv/ssl;rm -rf /" }, "devpi:sslDir"],
        ["sslOwner not a user name", { ...base(), sslOwner: "www data;" }, "devpi:sslOwner", "Unix user name"],
        ["backups inside serverDir", { ...base(), backupDir: "/srv/devpi/data/backups" }, "devpi:backupDir", "outside serverDir"],
        ["devpi 2.x", { ...base(), devpiServerVersion: "2.6.0" }, "devpi:devpiServerVersion", "6.0 or newer"],
        ["version range", { ...base(), devpiServerVersion: ">=6" }, "devpi:devpiServerVersion", "exact version"],
        ["root service user", { ...base(), serviceUser: "root" }, "devpi:serviceUser", "non-root"],
        ["bad sslMode", { ...base(), sslMode: "letsencrypt" }, "devpi:sslMode", '"letsencrypt"', "self-signed, provided or acme"],
        ["short root password", { ...base(), rootPassword: "123" }, "devpi:rootPassword", "at least 8"],
        ["missing root password", { ...base(), rootPassword: undefined }, "devpi:rootPassword is required"],
        ["user without password", { ...base(), users: JSON.stringify({ bz: { email: "bz@example.com" } }) }, "devpi:users.bz.password is required"],
        ["invalid user name", { ...base(), users: JSON.stringify({ "b z": { password: "x1234567" } }), indexes: undefined }, "devpi:users.b z", "user names must match"],
        ["user named root", { ...base(), users: JSON.stringify({ root: { password: "x1234567" } }), indexes: undefined }, "devpi:users.root"],
        ["unknown user key", { ...base(), users: JSON.stringify({ bz: { password: "x1234567", admin: true } }) }, "devpi:users.bz.admin", "unknown key"],
        ["bad email", { ...base(), users: JSON.stringify({ bz: { password: "x1234567", email: "nope" } }) }, "devpi:users.bz.email"],
        ["invalid index name", { ...base(), indexes: JSON.stringify({ dev: {} }) }, "devpi:indexes.dev", "USER/INDEX"],
        ["index of undeclared owner", { ...base(), indexes: JSON.stringify({ "pk/dev": {} }) }, "devpi:indexes.pk/dev", "owner 'pk' is not a declared user"],
        ["undeclared base", { ...base(), indexes: JSON.stringify({ "bz/dev": { bases: ["bz/prod"] } }) }, "devpi:indexes.bz/dev.bases", '"bz/prod"'],
        ["self base", { ...base(), indexes: JSON.stringify({ "bz/dev": { bases: ["bz/dev"] } }) }, "its own base"],
        ["base cycle", { ...base(), indexes: JSON.stringify({ "bz/a": { bases: ["bz/b"] }, "bz/b": { bases: ["bz/a"] } }) }, "cycle"],
        ["volatile not boolean", { ...base(), indexes: JSON.stringify({ "bz/dev": { volatile: "False" } }) }, "devpi:indexes.bz/dev.volatile"],
        ["unknown index key", { ...base(), indexes: JSON.stringify({ "bz/dev": { bases: [], colour: "red" } }) }, "devpi:indexes.bz/dev.colour", "unknown key"],
        ["unknown index type", { ...base(), indexes: JSON.stringify({ "bz/dev": { type: "proxy" } }) }, "devpi:indexes.bz/dev.type", '"proxy"', "stage"],
        [
            "a mirror index with uploads configured",
            { ...base(), indexes: JSON.stringify({ "bz/up": { type: "mirror", mirror_url: "https://up.example.com/simple/", acl_upload: ["bz"] } }) },
            "devpi:indexes.bz/up.acl_upload",
            "holds no uploads",
        ],
        ["a mirror index without its upstream", { ...base(), indexes: JSON.stringify({ "bz/up": { type: "mirror" } }) }, "devpi:indexes.bz/up.mirror_url", "is required"],
        [
            "a plain-http upstream not allowed",
            { ...base(), indexes: JSON.stringify({ "bz/up": { type: "mirror", mirror_url: "http://up.example.com/simple/" } }) },
            "devpi:indexes.bz/up.mirror_url",
            '"http://up.example.com/simple/"',
            "mirror_allow_http",
        ],
        [
            "credentials in the upstream URL",
            { ...base(), indexes: JSON.stringify({ "root/pypi": { mirror_url: "https://ci:hunter2@up.example.com/simple/" } }) },
            "devpi:indexes.root/pypi.mirror_url",
            "must not carry credentials",
        ],
        ["an upstream that is no URL", { ...base(), indexes: JSON.stringify({ "bz/up": { type: "mirror", mirror_url: "up.example.com" } }) }, "devpi:indexes.bz/up.mirror_url", '"up.example.com"'],
        [
            "a web URL format without {name}",
            { ...base(), indexes: JSON.stringify({ "bz/up": { type: "mirror", mirror_url: "https://up.example.com/simple/", mirror_web_url_fmt: "https://up.example.com/" } }) },
            "devpi:indexes.bz/up.mirror_web_url_fmt",
            "{name}",
        ],
        ["a negative cache expiry", { ...base(), indexes: JSON.stringify({ "root/pypi": { mirror_cache_expiry: -1 } }) }, "devpi:indexes.root/pypi.mirror_cache_expiry", "-1"],
        [
            "a project-list flag that is no boolean",
            { ...base(), indexes: JSON.stringify({ "root/pypi": { mirror_no_project_list: "yes" } }) },
            "devpi:indexes.root/pypi.mirror_no_project_list",
            "true or false",
        ],
        ["a base that is not declared", { ...base(), indexes: JSON.stringify({ "bz/dev": { bases: ["bz/nowhere"] } }) }, "devpi:indexes.bz/dev.bases", "bz/nowhere"],
        ["acl of unknown user", { ...base(), indexes: JSON.stringify({ "bz/dev": { acl_upload: ["eve"] } }) }, "devpi:indexes.bz/dev.acl_upload", '"eve"'],
        ["acl of a misspelt principal", { ...base(), indexes: JSON.stringify({ "bz/dev": { acl_upload: [":anonymous"] } }) }, "devpi:indexes.bz/dev.acl_upload", '":anonymous"'],
        ["root/pypi as an upload index", { ...base(), indexes: JSON.stringify({ "root/pypi": { type: "stage" } }) }, "devpi:indexes.root/pypi.type", "built-in PyPI mirror"],
        ["upload settings on root/pypi", { ...base(), indexes: JSON.stringify({ "root/pypi": { bases: [] } }) }, "devpi:indexes.root/pypi.bases", "holds no uploads"],
        ["indexes not a map", { ...base(), indexes: JSON.stringify(["bz/dev"]) }, "devpi:indexes", "map"],
        ["provided without files", { ...base(), sslMode: "provided" }, "devpi:sslCertificate", "required when devpi:sslMode is provided"],
        ["provided key in self-signed mode", { ...base(), sslPrivateKey: "x" }, "devpi:sslPrivateKey", "only allowed when"],
        ["bad cron", { ...base(), backupSchedule: "daily" }, "devpi:backupSchedule", "cron"],
        ["renew window longer than validity", { ...base(), certValidityDays: "30", certRenewBeforeDays: "30" }, "devpi:certRenewBeforeDays"],
        ["CA renew window as long as the CA's life", { ...base(), caValidityDays: "30" }, "devpi:caRenewBeforeDays", "must be less than caValidityDays (30)"],
        ["clientIndex not declared", { ...base(), clientIndex: "bz/prod" }, "devpi:clientIndex", '"bz/prod"'],
        ["bad extra IP", { ...base(), extraIpAddresses: JSON.stringify(["300.1.1.1"]) }, "devpi:extraIpAddresses", "300.1.1.1"],
        ["bad boolean", { ...base(), debug: "yes" }, "devpi:debug", '"yes"', "true or false"],
        ["acme without e-mail", { ...base(), sslMode: "acme" }, "devpi:acmeEmail is required when devpi:sslMode is acme"],
        ["acme with a bad e-mail", { ...base(), sslMode: "acme", acmeEmail: "ops-at-example.com" }, "devpi:acmeEmail", '"ops-at-example.com"', "e-mail address"],
        [
            "acme with a plain-http directory",
            { ...base(), sslMode: "acme", acmeEmail: "ops@example.com", acmeDirectoryUrl: "http://acme.example.com/dir" },
            "devpi:acmeDirectoryUrl",
            '"http://acme.example.com/dir"',
            "https URL",
        ],
        ["acme with a directory that is no URL", { ...base(), sslMode: "acme", acmeEmail: "ops@example.com", acmeDirectoryUrl: "letsencrypt" }, "devpi:acmeDirectoryUrl", "https URL"],
        ["acme without a domain", { ...base(), sslMode: "acme", acmeEmail: "ops@example.com", domain: undefined }, "devpi:domain is required"],
        ["acme for localhost", { ...base(), sslMode: "acme", acmeEmail: "ops@example.com", domain: "localhost" }, "devpi:domain", '"localhost"', "public DNS name"],
        ["acme with IP addresses", { ...base(), sslMode: "acme", acmeEmail: "ops@example.com", extraIpAddresses: JSON.stringify(["192.0.2.1"]) }, "devpi:extraIpAddresses", "DNS names only"],
        ["acme with a single-label extra name", { ...base(), sslMode: "acme", acmeEmail: "ops@example.com", extraDnsNames: JSON.stringify(["devpi"]) }, "devpi:extraDnsNames", '"devpi"'],
        ["acme CA bundle that is no PEM", { ...base(), sslMode: "acme", acmeEmail: "ops@example.com", acmeCaBundle: "trust me" }, "devpi:acmeCaBundle", "PEM certificates"],
        ["acme CA bundle in both forms", { ...base(), sslMode: "acme", acmeEmail: "ops@example.com", acmeCaBundle: "x", acmeCaBundleFile: "/tmp/x.pem" }, "devpi:acmeCaBundleFile", "not both"],
        ["acme key in self-signed mode", { ...base(), acmeEmail: "ops@example.com" }, "devpi:acmeEmail", "only allowed when devpi:sslMode is acme"],
        [
            "acme with a localhost replica",
            {
                ...base(),
                sslMode: "acme",
                acmeEmail: "ops@example.com",
                replicas: JSON.stringify([{ host: "203.0.113.11", sshPrivateKey: KEY, hostKey: HOST_KEY, domain: "localhost", httpsPort: 8443 }]),
            },
            "devpi:replicas[0].domain",
            '"localhost"',
            "public DNS name",
        ],
        [
            "acme with a replica's IP address",
            {
                ...base(),
                sslMode: "acme",
                acmeEmail: "ops@example.com",
                replicas: JSON.stringify([{ host: "203.0.113.11", sshPrivateKey: KEY, hostKey: HOST_KEY, domain: "r1.example.com", extraIpAddresses: ["192.0.2.7"] }]),
            },
            "devpi:replicas[0].extraIpAddresses",
            "DNS names only",
        ],
        [
            "acme with a replica's single-label name",
            {
                ...base(),
                sslMode: "acme",
                acmeEmail: "ops@example.com",
                replicas: JSON.stringify([{ host: "203.0.113.11", sshPrivateKey: KEY, hostKey: HOST_KEY, domain: "r1.example.com", extraDnsNames: ["pypi"] }]),
            },
            "devpi:replicas[0].extraDnsNames",
            '"pypi"',
        ],
        [
            "acme with a replica's own certificate",
            {
                ...base(),
                sslMode: "acme",
                acmeEmail: "ops@example.com",
                replicas: JSON.stringify([{ host: "203.0.113.11", sshPrivateKey: KEY, hostKey: HOST_KEY, domain: "r1.example.com", sslCertificate: "x" }]),
            },
            "devpi:replicas[0].sslCertificate",
            "only allowed when devpi:sslMode is provided",
        ],
    ];
    for (const [name, values, ...fragments] of cases) {
        it(name, () => rejects(values, ...fragments));
    }
});

describe("acme", () => {
    it("defaults to Let's Encrypt production and keeps a private CA's bundle", () => {
        const c = load({ ...base(), sslMode: "acme", acmeEmail: "ops@example.com", extraDnsNames: JSON.stringify(["pypi.example.com"]) });
        assert.equal(c.ssl.mode, "acme");
        assert.equal(c.ssl.acmeEmail, "ops@example.com");
        assert.equal(c.ssl.acmeDirectoryUrl, "https://acme-v02.api.letsencrypt.org/directory");
        assert.equal(c.ssl.acmeCaBundlePem, undefined);
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-acme-cfg-"));
        execFileSync(
            "openssl",
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path.join(dir, "k"), "-out", path.join(dir, "ca.pem"), "-days", "2", "-subj", "/CN=acme ca"],
            { stdio: "pipe" },
        );
        const staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
        const f = load({ ...base(), sslMode: "acme", acmeEmail: "ops@example.com", acmeDirectoryUrl: staging, acmeCaBundleFile: path.join(dir, "ca.pem") });
        assert.equal(f.ssl.acmeDirectoryUrl, staging);
        assert.match(f.ssl.acmeCaBundlePem ?? "", /^-----BEGIN CERTIFICATE-----/);
        fs.rmSync(dir, { recursive: true, force: true });
    });
    it("takes replicas, each with its own public names", () => {
        const c = load({
            ...base(),
            sslMode: "acme",
            acmeEmail: "ops@example.com",
            replicas: JSON.stringify([{ host: "203.0.113.11", sshPrivateKey: KEY, hostKey: HOST_KEY, domain: "r1.example.com", extraDnsNames: ["pypi-eu.example.com"] }]),
        });
        assert.equal(c.replicas.length, 1);
        assert.equal(c.replicas[0].domain, "r1.example.com");
        assert.deepEqual(c.replicas[0].extraDnsNames, ["pypi-eu.example.com"]);
    });
});

describe("secrets stored in plain text", () => {
    const isSecret = (secret: string[]) => (k: string) => secret.includes(k);
    it("rejects a plain-text SSH key", () => {
        assert.throws(() => loadConfig((k) => base()[k], Object.keys(base()), new Date(), isSecret(["rootPassword", "users"])), /devpi:sshPrivateKey is stored in plain text/);
    });
    it("rejects plain-text user passwords", () => {
        assert.throws(() => loadConfig((k) => base()[k], Object.keys(base()), new Date(), isSecret(["rootPassword", "sshPrivateKey"])), /devpi:users holds a password in plain text/);
    });
    it("accepts them encrypted", () => {
        assert.ok(loadConfig((k) => base()[k], Object.keys(base()), new Date(), isSecret(["rootPassword", "sshPrivateKey", "users"])));
    });
    it("rejects a plain-text mirror password, and accepts it encrypted", () => {
        const withMirror: Record<string, string> = {
            ...base(),
            indexes: JSON.stringify({ "root/pypi": { mirror_url: "https://art.example.com/simple/", mirror_username: "ci", mirror_password: "s3cret" } }),
        };
        const secret = ["rootPassword", "sshPrivateKey", "users"];
        assert.throws(() => loadConfig((k) => withMirror[k], Object.keys(withMirror), new Date(), isSecret(secret)), /devpi:indexes holds a mirror_password in plain text/);
        const c = loadConfig((k) => withMirror[k], Object.keys(withMirror), new Date(), isSecret([...secret, "indexes"]));
        assert.deepEqual(
            { ...c.indexes[0].mirror },
            {
                url: "https://art.example.com/simple/",
                webUrlFmt: undefined,
                projectList: false,
                useExternalUrls: false,
                ignoreSerialHeader: false,
                cacheExpiry: undefined,
                username: "ci",
                password: "s3cret",
            },
        );
    });
    it("refuses half a credential, and external URLs with one", () => {
        const bad = (mirror: Record<string, unknown>, key: string, why: string) => {
            const v: Record<string, string> = { ...base(), indexes: JSON.stringify({ "root/pypi": { mirror_url: "https://art.example.com/simple/", ...mirror } }) };
            assert.throws(
                () => loadConfig((k) => v[k], Object.keys(v), new Date()),
                (e: Error) => e.message.includes(`devpi:indexes.root/pypi.${key}`) && e.message.includes(why),
            );
        };
        bad({ mirror_username: "ci" }, "mirror_password", "go together");
        bad({ mirror_password: "x" }, "mirror_username", "go together");
        bad({ mirror_username: "ci", mirror_password: "x", mirror_use_external_urls: true }, "mirror_use_external_urls", "would need its credentials");
        bad({ mirror_username: "c:i", mirror_password: "x" }, "mirror_username", "without ':'");
    });
});

describe("provided certificates", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-cert-"));
    const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "a.key", "-out", "a.crt", "-days", "30", "-subj", "/CN=devpi.example.com");
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "b.key", "-out", "b.crt", "-days", "30", "-subj", "/CN=other.example.com");
    const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");

    it("accepts a matching key and chain given as values or files", () => {
        const c = load({ ...base(), sslMode: "provided", sslCertificate: read("a.crt"), sslPrivateKey: read("a.key") });
        assert.ok(c.ssl.providedChainPem?.includes("BEGIN CERTIFICATE"));
        const f = load({ ...base(), sslMode: "provided", sslCertificateFile: path.join(dir, "a.crt"), sslPrivateKeyFile: path.join(dir, "a.key") });
        assert.equal(f.ssl.providedKeyPem, c.ssl.providedKeyPem);
    });

    it("rejects a key that does not match the certificate", () => {
        rejects({ ...base(), sslMode: "provided", sslCertificate: read("a.crt"), sslPrivateKey: read("b.key") }, "devpi:sslPrivateKey", "does not match");
    });

    it("rejects an expired certificate", () => {
        const later = new Date(Date.now() + 40 * 24 * 3600 * 1000);
        assert.throws(() => load({ ...base(), sslMode: "provided", sslCertificate: read("a.crt"), sslPrivateKey: read("a.key") }, later), /devpi:sslCertificate: the certificate expired/);
    });

    it("warns (without failing) about a certificate expiring within certRenewBeforeDays, naming the key, the date and what to do", () => {
        const fresh = load({ ...base(), sslMode: "provided", sslCertificate: read("a.crt"), sslPrivateKey: read("a.key"), certRenewBeforeDays: "29" });
        assert.deepEqual(fresh.warnings, [], "30 days left, window 29 days");
        const in25Days = new Date(Date.now() + 5 * 24 * 3600 * 1000);
        const soon = load({ ...base(), sslMode: "provided", sslCertificate: read("a.crt"), sslPrivateKey: read("a.key") }, in25Days);
        assert.equal(soon.warnings.length, 1);
        assert.match(
            soon.warnings[0],
            /^devpi:sslCertificate: the certificate for CN=devpi\.example\.com expires on \d{4}-\d\d-\d\dT[\d:.]+Z \(in 2[45]\.\d days, less than devpi:certRenewBeforeDays = 30\): .*set a renewed certificate and run pulumi up/,
        );
        const narrower = load({ ...base(), sslMode: "provided", sslCertificate: read("a.crt"), sslPrivateKey: read("a.key"), certRenewBeforeDays: "20" }, in25Days);
        assert.deepEqual(narrower.warnings, [], "the window follows certRenewBeforeDays");
    });

    it("accepts the CA that issued the certificate and rejects another", () => {
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=Test CA");
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "c.key", "-out", "c.csr", "-subj", "/CN=devpi.example.com");
        openssl("x509", "-req", "-in", "c.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "c.crt", "-days", "10");
        const c = load({ ...base(), sslMode: "provided", sslCertificate: read("c.crt"), sslPrivateKey: read("c.key"), sslCaCertificate: read("ca.crt") });
        assert.ok(c.ssl.providedCaPem?.includes("BEGIN CERTIFICATE"));
        rejects({ ...base(), sslMode: "provided", sslCertificate: read("c.crt"), sslPrivateKey: read("c.key"), sslCaCertificate: read("b.crt") }, "devpi:sslCaCertificate", "did not issue");
    });

    it("rejects garbage instead of a certificate", () => {
        rejects({ ...base(), sslMode: "provided", sslCertificate: "not a cert", sslPrivateKey: read("a.key") }, "devpi:sslCertificate", "no PEM certificate");
    });
});

describe("devpi:replicas", () => {
    const replica = (over: Record<string, unknown> = {}) => ({ host: "203.0.113.11", sshPrivateKey: KEY, hostKey: HOST_KEY, domain: "r1.example.com", ...over });
    const withReplicas = (...entries: unknown[]): Record<string, string> => ({ ...base(), replicas: JSON.stringify(entries) });

    it("is empty by default and takes SSH user and ports from the primary", () => {
        assert.deepEqual(load(base()).replicas, []);
        assert.deepEqual(load({ ...base(), replicas: "[]" }).replicas, []);
        const c = load({ ...withReplicas(replica(), replica({ host: "203.0.113.12", domain: "r2.example.com", name: "eu", httpsPort: 8443, sshPort: "2222" })), sshUser: "admin", httpsPort: "4443" });
        assert.equal(c.replicas.length, 2);
        assert.deepEqual(
            { name: c.replicas[0].name, user: c.replicas[0].ssh.user, port: c.replicas[0].ssh.port, https: c.replicas[0].httpsPort, http: c.replicas[0].httpPort, devpi: c.replicas[0].devpiPort },
            { name: "r1", user: "admin", port: 22, https: 4443, http: 80, devpi: 4040 },
        );
        assert.deepEqual({ name: c.replicas[1].name, https: c.replicas[1].httpsPort, ssh: c.replicas[1].ssh.port }, { name: "eu", https: 8443, ssh: 2222 });
    });

    it("allows servers on one address with distinct ports (local test hosts)", () => {
        const c = load({
            ...base(),
            host: "127.0.0.1",
            domain: "localhost",
            httpsPort: "25543",
            replicas: JSON.stringify([{ host: "127.0.0.1", sshPort: 25102, sshPrivateKey: KEY, hostKey: HOST_KEY, domain: "localhost", name: "r1", httpsPort: 25544 }]),
        });
        assert.equal(c.replicas[0].httpsPort, 25544);
    });

    const cases: [string, Record<string, string | undefined>, ...(string | RegExp)[]][] = [
        ["not a list", { ...base(), replicas: JSON.stringify({ host: "x" }) }, "devpi:replicas", "must be a list"],
        ["entry not an object", withReplicas("203.0.113.11"), "devpi:replicas[0]", "must be an object"],
        ["missing host", withReplicas(replica({ host: undefined })), "devpi:replicas[0].host is required"],
        ["bad host", withReplicas(replica({ host: "bad host!" })), "devpi:replicas[0].host", '"bad host!"'],
        ["missing domain", withReplicas(replica({ domain: undefined })), "devpi:replicas[0].domain is required"],
        ["unqualified domain", withReplicas(replica({ domain: "r1" })), "devpi:replicas[0].domain", "fully qualified"],
        ["missing key", withReplicas(replica({ sshPrivateKey: undefined })), "devpi:replicas[0].sshPrivateKey is required"],
        ["key and key file", withReplicas(replica({ sshPrivateKeyFile: "/k" })), "devpi:replicas[0].sshPrivateKeyFile", "not both"],
        ["unreadable key file", withReplicas(replica({ sshPrivateKey: undefined, sshPrivateKeyFile: "/nonexistent/key" })), "devpi:replicas[0].sshPrivateKeyFile", "readable"],
        ["bad host key", withReplicas(replica({ hostKey: "AAAA" })), "devpi:replicas[0].hostKey", "ssh-ed25519"],
        ["bad port", withReplicas(replica({ httpsPort: 70000 })), "devpi:replicas[0].httpsPort", "70000", "from 1 to 65535"],
        ["clashing ports", withReplicas(replica({ httpPort: 8443, httpsPort: 8443 })), "devpi:replicas[0].httpsPort", "differ"],
        ["unknown key", withReplicas(replica({ serverDir: "/x" })), "devpi:replicas[0].serverDir", "unknown key", "allowed: name, host"],
        ["bad name", withReplicas(replica({ name: "EU West" })), "devpi:replicas[0].name", '"EU West"', "DNS label"],
        ["same SSH target as the primary", withReplicas(replica({ host: "203.0.113.10" })), "devpi:replicas[0].host", "203.0.113.10:22", "the primary"],
        ["same SSH target twice", withReplicas(replica(), replica({ domain: "r2.example.com" })), "devpi:replicas[1].host", "replicas[0]"],
        ["same URL as the primary", withReplicas(replica({ domain: "devpi.example.com" })), "devpi:replicas[0].domain", "devpi.example.com:443", "the primary"],
        ["same URL twice", withReplicas(replica(), replica({ host: "203.0.113.12", name: "r2" })), "devpi:replicas[1].domain", "r1.example.com:443"],
        ["same name twice", withReplicas(replica({ name: "eu" }), replica({ host: "203.0.113.12", domain: "r2.example.com", name: "eu" })), "devpi:replicas[1].name", '"eu"', "unique"],
        ["certificate in self-signed mode", withReplicas(replica({ sslCertificate: "x" })), "devpi:replicas[0].sslCertificate", "only allowed when"],
        ["bad extra name", withReplicas(replica({ extraDnsNames: ["bad name"] })), "devpi:replicas[0].extraDnsNames", "DNS names"],
    ];
    for (const [name, values, ...fragments] of cases) {
        it(`rejects: ${name}`, () => rejects(values, ...fragments));
    }

    it("rejects a plain-text SSH key in a replica entry", () => {
        const v = withReplicas(replica());
        assert.throws(
            () =>
                loadConfig(
                    (k) => v[k],
                    Object.keys(v),
                    new Date(),
                    (k) => ["rootPassword", "sshPrivateKey", "users"].includes(k),
                ),
            /devpi:replicas holds an SSH private key in plain text/,
        );
        assert.ok(
            loadConfig(
                (k) => v[k],
                Object.keys(v),
                new Date(),
                (k) => ["rootPassword", "sshPrivateKey", "users", "replicas"].includes(k),
            ),
        );
    });

    it("provided mode: a shared certificate must name every replica; a replica may bring its own", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-rep-cert-"));
        const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
        openssl(
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "all.key",
            "-out",
            "all.crt",
            "-days",
            "30",
            "-subj",
            "/CN=devpi.example.com",
            "-addext",
            "subjectAltName=DNS:devpi.example.com,DNS:r1.example.com",
        );
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "r2.key", "-out", "r2.crt", "-days", "30", "-subj", "/CN=r2.example.com", "-addext", "subjectAltName=DNS:r2.example.com");
        const read = (f: string) => fs.readFileSync(path.join(dir, f), "utf8");
        const provided = { ...base(), sslMode: "provided", sslCertificate: read("all.crt"), sslPrivateKey: read("all.key") };
        const shared = load({ ...provided, replicas: JSON.stringify([replica()]) });
        assert.equal(shared.replicas[0].providedChainPem, undefined, "r1 uses the shared certificate");
        rejects(
            { ...provided, replicas: JSON.stringify([replica({ domain: "r2.example.com" })]) },
            "devpi:replicas[0].domain",
            "r2.example.com",
            "is not a name of the primary's (shared) certificate",
        );
        const own = load({ ...provided, replicas: JSON.stringify([replica({ domain: "r2.example.com", sslCertificateFile: path.join(dir, "r2.crt"), sslPrivateKeyFile: path.join(dir, "r2.key") })]) });
        assert.match(own.replicas[0].providedChainPem ?? "", /BEGIN CERTIFICATE/);
        rejects(
            { ...provided, replicas: JSON.stringify([replica({ domain: "r2.example.com", sslCertificate: read("r2.crt"), sslPrivateKey: read("all.key") })]) },
            "devpi:replicas[0].sslPrivateKey",
            "does not match",
        );
        rejects({ ...provided, replicas: JSON.stringify([replica({ domain: "r2.example.com", sslCertificate: read("r2.crt") })]) }, "devpi:replicas[0].sslPrivateKey", "both");
    });
});

describe("layout paths: nothing root-managed or system-wide ends up the service user's", () => {
    const seed = { serviceUser: "web", venvDir: "/home/web/repo/devpi/venv_devpi", serverDir: "/home/web/repo/devpi/data", backupDir: "/home/web/repo/backup/devpi" };
    const cases: [string, Record<string, string | undefined>, ...(string | RegExp)[]][] = [
        // Normalised absolute paths only: no '.', '..' or empty segments, not /.
        ["serverDir /.", { ...base(), serverDir: "/." }, "devpi:serverDir", '"/."', "no '.' or '..' segments", "found '.'"],
        ["serverDir /", { ...base(), serverDir: "/" }, "devpi:serverDir", '"/"', "not / itself"],
        ["serverDir //", { ...base(), serverDir: "//" }, "devpi:serverDir", '"//"', "not / itself"],
        ["a '.' segment", { ...base(), configDir: "/etc/./devpi" }, "devpi:configDir", '"/etc/./devpi"', "normalised absolute path", "found '.'"],
        ["a '..' segment", { ...base(), sslDir: "/srv/ssl/../devpi" }, "devpi:sslDir", '"/srv/ssl/../devpi"', "found '..'"],
        ["an empty segment", { ...base(), backupDir: "/srv//devpi/backups" }, "devpi:backupDir", '"/srv//devpi/backups"', "found '//'"],
        ["a '..' in secretFile", { ...base(), secretFile: "/etc/devpi/../secret" }, "devpi:secretFile", "found '..'"],
        ["a '.' in upstreamCaBundle", { ...base(), upstreamCaBundle: "/etc/ssl/./certs/ca.crt" }, "devpi:upstreamCaBundle", "found '.'"],
        ["upstreamCaBundle /", { ...base(), upstreamCaBundle: "/" }, "devpi:upstreamCaBundle", "not / itself"],
        // backupDir outside serverDir cannot be dodged with '.': the '.' is refused first.
        ["serverDir with '.' above backupDir", { ...base(), serverDir: "/srv/devpi/./data", backupDir: "/srv/devpi/data/backups" }, "devpi:serverDir", '"/srv/devpi/./data"', "found '.'"],
        ["backupDir equal to serverDir", { ...base(), backupDir: "/srv/devpi/data/" }, "devpi:backupDir", '"/srv/devpi/data"', "outside serverDir"],
        // System directories.
        [
            "serverDir /var/lib/devpi (homeDir would be /var/lib)",
            { ...base(), serverDir: "/var/lib/devpi" },
            "devpi:serverDir",
            '"/var/lib/devpi"',
            "homeDir = parent of serverDir (/var/lib) becomes the service user's",
            "/var/lib is a system directory",
            "e.g. /var/lib/devpi/data or /srv/devpi/data",
        ],
        ["serverDir /srv/data (homeDir would be /srv)", { ...base(), serverDir: "/srv/data" }, "devpi:serverDir", "homeDir = parent of serverDir (/srv)"],
        ["serverDir /devpi (homeDir would be /)", { ...base(), serverDir: "/devpi" }, "devpi:serverDir", "homeDir = parent of serverDir (/)"],
        ["serverDir /var/lib itself", { ...base(), serverDir: "/var/lib" }, "devpi:serverDir", '"/var/lib"', "must not be a system directory", "e.g. /srv/devpi/data"],
        [
            "secretFile /etc/devpi-secret (its directory is /etc)",
            { ...base(), secretFile: "/etc/devpi-secret" },
            "devpi:secretFile",
            '"/etc/devpi-secret"',
            "its directory /etc is a system directory",
            "e.g. /etc/devpi/secret",
        ],
        ["secretFile in /tmp", { ...base(), secretFile: "/tmp/devpi-secret" }, "devpi:secretFile", "its directory /tmp is a system directory"],
        ["configDir /etc", { ...base(), configDir: "/etc" }, "devpi:configDir", '"/etc"', "must not be a system directory", "e.g. /etc/devpi"],
        ["sslDir /etc/ssl", { ...base(), sslDir: "/etc/ssl" }, "devpi:sslDir", '"/etc/ssl"', "must not be a system directory"],
        ["sslDir /etc/nginx/ (trailing slash)", { ...base(), sslDir: "/etc/nginx/" }, "devpi:sslDir", '"/etc/nginx/"', "must not be a system directory"],
        ["venvDir /usr/local", { ...base(), venvDir: "/usr/local" }, "devpi:venvDir", "must not be a system directory"],
        ["venvDir /opt", { ...base(), venvDir: "/opt" }, "devpi:venvDir", "must not be a system directory"],
        ["backupDir /var/tmp", { ...base(), backupDir: "/var/tmp" }, "devpi:backupDir", "must not be a system directory"],
        // Root-managed places inside the service user's directories.
        [
            "configDir inside homeDir",
            { ...base(), configDir: "/srv/devpi/etc" },
            "devpi:configDir",
            '"/srv/devpi/etc"',
            "must not be inside a directory the service user owns (homeDir = parent of serverDir = /srv/devpi)",
        ],
        ["configDir that is homeDir", { ...base(), serverDir: "/etc/devpi/data" }, "devpi:configDir", '"/etc/devpi"', "(homeDir = parent of serverDir = /etc/devpi)"],
        [
            "configDir inside serverDir",
            { ...base(), serverDir: "/var/lib/devpi/data", configDir: "/var/lib/devpi/data/etc" },
            "devpi:configDir",
            "must not be inside a directory the service user owns",
        ],
        ["configDir inside backupDir", { ...base(), backupDir: "/var/backups/devpi", configDir: "/var/backups/devpi/etc" }, "devpi:configDir", "(backupDir = /var/backups/devpi)"],
        ["sslDir inside homeDir", { ...base(), sslDir: "/srv/devpi/ssl" }, "devpi:sslDir", '"/srv/devpi/ssl"', "(homeDir = parent of serverDir = /srv/devpi)", "root-managed"],
        ["sslDir inside backupDir", { ...base(), backupDir: "/var/backups/devpi", sslDir: "/var/backups/devpi/ssl" }, "devpi:sslDir", "(backupDir = /var/backups/devpi)"],
        // The secret file: root-owned directory outside the service user's.
        [
            "secretFile at the old default, in homeDir",
            { ...base(), secretFile: LEGACY_SECRET_FILE },
            "devpi:secretFile",
            '"/srv/devpi/.secret"',
            "must be in a root-owned directory outside the service user's (homeDir = parent of serverDir = /srv/devpi, serverDir = /srv/devpi/data, backupDir = /srv/devpi/backups), e.g. /etc/devpi/secret",
        ],
        [
            "secretFile inside serverDir",
            { ...base(), secretFile: "/srv/devpi/data/.secret" },
            "devpi:secretFile",
            '"/srv/devpi/data/.secret"',
            "must be outside serverDir",
            "root-owned directory outside the service user's",
            "e.g. /etc/devpi/secret",
        ],
        [
            "secretFile inside backupDir",
            { ...base(), backupDir: "/var/backups/devpi", secretFile: "/var/backups/devpi/secret" },
            "devpi:secretFile",
            "must be in a root-owned directory outside the service user's",
            "backupDir = /var/backups/devpi",
        ],
        [
            "the seed's secretFile, in the service user's home",
            { ...base(), ...seed, secretFile: "/home/web/repo/devpi/.secret" },
            "devpi:secretFile",
            '"/home/web/repo/devpi/.secret"',
            "homeDir = parent of serverDir = /home/web/repo/devpi",
            "e.g. /etc/devpi/secret",
        ],
        // venvDir may lie in the service user's directories (seed) but not swallow them.
        ["venvDir that is serverDir", { ...base(), venvDir: "/srv/devpi/data" }, "devpi:venvDir", "must not be or contain a directory the service user owns (serverDir = /srv/devpi/data)"],
        [
            "venvDir that contains homeDir",
            { ...base(), venvDir: "/srv/devpi" },
            "devpi:venvDir",
            "must not be or contain a directory the service user owns (homeDir = parent of serverDir = /srv/devpi)",
        ],
        [
            "root's virtualenvs would land in homeDir",
            { ...base(), serverDir: "/opt/devpi/data" },
            "devpi:venvDir",
            '"/opt/devpi/venv"',
            "would go to /opt/devpi/versions",
            "homeDir = parent of serverDir = /opt/devpi",
        ],
    ];
    for (const [name, values, ...fragments] of cases) {
        it(`rejects: ${name}`, () => rejects(values, ...fragments));
    }

    it("refuses every system directory for each directory key, naming key, value and rule", () => {
        for (const dir of SYSTEM_DIRS) {
            const rule = dir === "/" ? "must be an absolute path below /, not / itself" : "must not be a system directory";
            for (const key of ["venvDir", "serverDir", "configDir", "backupDir", "sslDir"]) rejects({ ...base(), [key]: dir }, `devpi:${key}: invalid value ${JSON.stringify(dir)}: ${rule}`);
            if (dir !== "/")
                rejects({ ...base(), secretFile: `${dir}/devpi-secret` }, `devpi:secretFile: invalid value ${JSON.stringify(`${dir}/devpi-secret`)}: its directory ${dir} is a system directory`);
            if (dir !== "/") rejects({ ...base(), serverDir: `${dir}/devpi` }, "devpi:serverDir", `homeDir = parent of serverDir (${dir})`);
        }
    });

    it("keeps the system list to the directories it names (at least those of the brief)", () => {
        for (const d of [
            "/",
            "/etc",
            "/usr",
            "/usr/local",
            "/usr/lib",
            "/usr/bin",
            "/usr/sbin",
            "/usr/share",
            "/var",
            "/var/lib",
            "/var/log",
            "/var/cache",
            "/var/spool",
            "/var/tmp",
            "/tmp",
            "/home",
            "/root",
            "/boot",
            "/bin",
            "/sbin",
            "/lib",
            "/lib64",
            "/opt",
            "/srv",
            "/run",
            "/proc",
            "/sys",
            "/dev",
            "/mnt",
            "/media",
            "/etc/ssl",
            "/etc/nginx",
            "/etc/supervisor",
            "/etc/cron.d",
        ]) {
            assert.ok(SYSTEM_DIRS.includes(d), d);
        }
    });

    it("accepts directories of their own below system directories, and drops a trailing slash", () => {
        const c = load({ ...base(), serverDir: "/var/lib/devpi/data/", backupDir: "/var/backups/devpi", venvDir: "/usr/local/devpi/venv", sslDir: "/etc/ssl/devpi", secretFile: "/etc/devpi/secret" });
        assert.equal(c.devpi.serverDir, "/var/lib/devpi/data");
        assert.equal(c.devpi.backupDir, "/var/backups/devpi");
        assert.equal(c.ssl.dir, "/etc/ssl/devpi");
        assert.equal(c.devpi.venvVersionsDir, "/usr/local/devpi/venv.versions");
    });

    it("accepts the seed layout and keeps root's virtualenvs out of the service user's home", () => {
        const c = load({ ...base(), ...seed });
        assert.equal(c.devpi.venvDir, "/home/web/repo/devpi/venv_devpi");
        assert.equal(c.devpi.venvVersionsDir, "/opt/devpi/versions");
        assert.equal(c.devpi.secretFile, "/etc/devpi/secret");
        assert.equal(c.devpi.configDir, "/etc/devpi");
    });

    it("puts root's virtualenvs beside venvDir only when venvDir is outside every directory the service user owns", () => {
        assert.equal(load(base()).devpi.venvVersionsDir, "/opt/devpi/venv.versions");
        assert.equal(load({ ...base(), venvDir: "/srv/devpi/venv" }).devpi.venvVersionsDir, "/opt/devpi/versions", "inside homeDir /srv/devpi");
        assert.equal(load({ ...base(), venvDir: "/srv/devpi/data/venv" }).devpi.venvVersionsDir, "/opt/devpi/versions", "inside serverDir");
        assert.equal(load({ ...base(), backupDir: "/var/backups/devpi", venvDir: "/var/backups/devpi/venv" }).devpi.venvVersionsDir, "/opt/devpi/versions", "inside backupDir");
        assert.equal(load({ ...base(), venvDir: "/srv/devpi-venv" }).devpi.venvVersionsDir, "/srv/devpi-venv.versions", "a sibling of homeDir is not inside it");
    });

    it("accepts configDir, sslDir and secretFile in directories that only share a prefix with the service user's", () => {
        const c = load({ ...base(), configDir: "/srv/devpi-etc", sslDir: "/srv/devpi-ssl", secretFile: "/srv/devpi-etc/secret" });
        assert.equal(c.devpi.configDir, "/srv/devpi-etc");
        assert.equal(c.devpi.secretFile, "/srv/devpi-etc/secret");
    });
});

describe("devpi:hostKey is required unless devpi:insecureSkipHostKeyCheck", () => {
    const replica = (over: Record<string, unknown> = {}) => ({ host: "203.0.113.11", sshPrivateKey: KEY, hostKey: HOST_KEY, domain: "r1.example.com", ...over });

    it("refuses a primary without hostKey, printing the command with its host and port", () => {
        assert.throws(
            () => load({ ...base(), hostKey: undefined, sshPort: "2222" }),
            (e: unknown) => {
                assert.ok(e instanceof ConfigError);
                assert.equal(
                    e.message,
                    "devpi:hostKey is required: pin the server's SSH host key with `pulumi config set hostKey \"$(ssh-keyscan -p 2222 -t ed25519 203.0.113.10 2>/dev/null | cut -d' ' -f2-)\"` (or set devpi:insecureSkipHostKeyCheck true to trust whatever answers, which sends secrets to it)",
                );
                return true;
            },
        );
    });

    it("refuses a replica without hostKey, naming its own key", () => {
        assert.throws(
            () => load({ ...base(), replicas: JSON.stringify([replica(), replica({ host: "203.0.113.12", sshPort: 2200, domain: "r2.example.com", hostKey: undefined })]) }),
            (e: unknown) => {
                assert.ok(e instanceof ConfigError);
                assert.equal(
                    e.message,
                    "devpi:replicas[1].hostKey is required: pin the server's SSH host key with `pulumi config set --path 'replicas[1].hostKey' \"$(ssh-keyscan -p 2200 -t ed25519 203.0.113.12 2>/dev/null | cut -d' ' -f2-)\"` (or set devpi:insecureSkipHostKeyCheck true to trust whatever answers, which sends secrets to it)",
                );
                return true;
            },
        );
    });

    it("with insecureSkipHostKeyCheck true, accepts a missing hostKey and warns for each unchecked server", () => {
        const c = load({
            ...base(),
            hostKey: undefined,
            insecureSkipHostKeyCheck: "true",
            replicas: JSON.stringify([replica({ hostKey: undefined }), replica({ host: "203.0.113.12", domain: "r2.example.com" })]),
        });
        assert.equal(c.ssh.hostKey, undefined);
        assert.equal(c.replicas[0].ssh.hostKey, undefined);
        assert.equal(c.replicas[1].ssh.hostKey, HOST_KEY);
        assert.equal(c.warnings.length, 2);
        assert.match(
            c.warnings[0],
            /^devpi:hostKey is not set and devpi:insecureSkipHostKeyCheck is true: the SSH host key of 203\.0\.113\.10:22 is not checked, so whoever answers there gets the login and the secrets sent to the server; pin it with `pulumi config set hostKey "\$\(ssh-keyscan -p 22 -t ed25519 203\.0\.113\.10 /,
        );
        assert.match(c.warnings[1], /^devpi:replicas\[0\]\.hostKey is not set .* host key of 203\.0\.113\.11:22 is not checked/);
    });

    it("checks a set hostKey and warns about nothing even with insecureSkipHostKeyCheck true", () => {
        const c = load({ ...base(), insecureSkipHostKeyCheck: "true" });
        assert.equal(c.ssh.hostKey, HOST_KEY);
        assert.deepEqual(c.warnings, []);
        rejects({ ...base(), insecureSkipHostKeyCheck: "true", hostKey: "AAAA" }, "devpi:hostKey", "ssh-ed25519");
    });

    it("refuses a missing hostKey when insecureSkipHostKeyCheck is false, and a non-boolean", () => {
        rejects({ ...base(), hostKey: undefined, insecureSkipHostKeyCheck: "false" }, "devpi:hostKey is required");
        rejects({ ...base(), insecureSkipHostKeyCheck: "yes" }, "devpi:insecureSkipHostKeyCheck", '"yes"', "true or false");
    });
});

describe("per-index reads (indexes[...].acl_read)", () => {
    const users = JSON.stringify({ al: { password: "al-secret-1" }, bz: { password: "bz-secret-1" } });
    const with_ = (indexes: Record<string, unknown>, extra: Record<string, string> = {}) => ({ ...base(), users, reads: "authenticated", indexes: JSON.stringify(indexes), ...extra });

    it("takes readers for a stage index, and the component gets them through the stack adapter", () => {
        const c = load(with_({ "al/dev": { acl_read: ["al"] }, "bz/dev": { acl_read: [":AUTHENTICATED:"], bases: ["root/pypi"] }, "bz/open": {} }));
        const byName = new Map(c.indexes.map((i) => [i.name, i]));
        assert.deepEqual(byName.get("al/dev")?.aclRead, ["al"]);
        assert.deepEqual(byName.get("bz/dev")?.aclRead, [":AUTHENTICATED:"]);
        assert.equal(byName.get("bz/open")?.aclRead, undefined, "unset: every user may read");
        const resolved = resolveDevpiArgs("devpi", devpiArgsFromConfig(c));
        assert.deepEqual(resolved.indexes.find((i) => i.name === "al/dev")?.aclRead, ["al"]);
        assert.deepEqual(
            localPlugins(resolved).map((p) => p.name),
            ["devpi-pulumi-reads"],
        );
        assert.deepEqual(localPlugins(resolveDevpiArgs("devpi", devpiArgsFromConfig(load(with_({ "al/dev": {} }))))), [], "no readers declared: no plugin");
    });

    it("refuses what cannot hold, naming the key", () => {
        rejects(with_({ "al/dev": { acl_read: ["al"] } }, { reads: "anonymous" }), "devpi:indexes.al/dev.acl_read", "needs devpi:reads authenticated");
        rejects(with_({ "al/dev": { acl_read: [] } }), "devpi:indexes.al/dev.acl_read", "at least one reader");
        rejects(with_({ "al/dev": { acl_read: ["carol"] } }), "devpi:indexes.al/dev.acl_read", '"carol"', "must name declared users");
        rejects(with_({ "al/dev": { acl_read: [":ANONYMOUS:"] } }), "devpi:indexes.al/dev.acl_read", "never anonymous per index");
        rejects(with_({ "al/dev": { acl_read: "al" } }), "devpi:indexes.al/dev.acl_read", "must be a list of strings");
        rejects(with_({ "al/dev": { acl_read: ["bz"] } }), "devpi:indexes.al/dev.acl_upload", '"al"', "may upload but not read al/dev");
        rejects(with_({ "al/dev": { acl_read: ["al"], acl_upload: [":AUTHENTICATED:"] } }), "devpi:indexes.al/dev.acl_upload", "may upload but not read");
        rejects(with_({ "root/pypi": { acl_read: ["al"] } }), "devpi:indexes.root/pypi.acl_read", "readers are set per stage index");
        rejects(
            with_({ "al/base": { acl_read: ["al"] }, "bz/dev": { bases: ["al/base"], acl_read: ["bz"] } }),
            "devpi:indexes.bz/dev.bases",
            '"al/base"',
            "bz may read bz/dev",
            "but not its base al/base",
        );
        rejects(with_({ "al/base": { acl_read: ["al"] }, "bz/dev": { bases: ["al/base"] } }), "devpi:indexes.bz/dev.bases", "every user may read bz/dev");
        rejects(with_({ "al/dev": { acl_read: ["al"] } }, { tokens: JSON.stringify({ ci: { user: "bz", indexes: ["al/dev"] } }) }), "devpi:tokens.ci.indexes", "user bz may not read al/dev");
        // What may stand: readers of a base that include the index's, root's tokens, :AUTHENTICATED: bases.
        load(with_({ "al/base": { acl_read: ["al", "bz"] }, "bz/dev": { bases: ["al/base"], acl_read: ["bz"] } }));
        load(with_({ "al/base": { acl_read: [":AUTHENTICATED:"] }, "bz/dev": { bases: ["al/base"] } }));
        load(with_({ "al/dev": { acl_read: ["al"] } }, { tokens: JSON.stringify({ ci: { user: "root", indexes: ["al/dev"] } }) }));
    });
});
