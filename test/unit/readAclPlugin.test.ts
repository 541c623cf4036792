/**
 * The per-index read plugin's hooks, run by Python against stand-ins for the two names it imports
 * (devpi_server.model.ACLList and pluggy.HookimplMarker) and for pyramid's request. The e2e suite
 * (privateReads) runs it inside the real devpi-server behind nginx.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { describe, it } from "node:test";
import { DEVPI_API_PY, DEVPI_INDEX_API_PY, renderApiScript } from "../../components/access/devpiApi";
import { indexSpec } from "../../components/access/devpiIndex";
import { READ_ACL_KEY, READ_ACL_PLUGIN_PY, readAclPlugin } from "../../components/devpi/readAclPlugin";
import { renderInstallScript, venvKey } from "../../components/devpi/devpiServerConfig";

const STUBS: Record<string, string> = {
    "devpi_server/__init__.py": "",
    "devpi_server/model.py": "class ACLList(list):\n    pass\n",
    "pluggy.py": `class HookimplMarker:
    def __init__(self, project):
        self.project = project

    def __call__(self, function=None, **opts):
        def mark(f):
            f.hookimpl_opts = opts
            return f
        return mark(function) if function is not None else mark
`,
};

const DRIVER = `
import json, sys
import devpi_pulumi_reads as p


class Outcome:
    def __init__(self, result):
        self.result = result

    def force_result(self, result):
        self.result = result


class Route:
    def __init__(self, name):
        self.name = name


class Stage:
    def __init__(self, readers):
        self.ixconfig = {"type": "stage"} if readers is None else {"type": "stage", p.KEY: readers}


class Context:
    def __init__(self, stage):
        self._stage = stage

    @property
    def stage(self):
        if self._stage is None:
            raise LookupError("no such index")
        return self._stage


class Request:
    def __init__(self, case):
        self.authenticated_userid = case.get("user")
        self.matched_route = Route(case["route"]) if case.get("route") else None
        self.matchdict = case.get("matchdict", {"user": "alice", "index": "dev"})
        self.context = Context(Stage(case.get("readers")) if case.get("index", True) else None)
        self.readers = case.get("readers") or []

    def has_permission(self, permission):
        assert permission == "pkg_read"
        return self.authenticated_userid == "root" or self.authenticated_userid in self.readers or ":AUTHENTICATED:" in self.readers


def decide(case):
    wrapper = p.devpiserver_authcheck_forbidden(Request(case))
    next(wrapper)
    outcome = Outcome(case.get("devpi", []))
    try:
        wrapper.send(outcome)
    except StopIteration:
        pass
    return outcome.result


cases = json.load(sys.stdin)
print(json.dumps({
    "wrapper": p.devpiserver_authcheck_forbidden.hookimpl_opts,
    "defaults": [p.devpiserver_indexconfig_defaults(t) for t in ("stage", "mirror")],
    "acl_type": type(p.devpiserver_indexconfig_defaults("stage")[p.KEY]).__name__,
    "principals": [p.devpiserver_stage_get_principals_for_pkg_read(c) for c in ({}, {p.KEY: []}, {p.KEY: ["alice", ":AUTHENTICATED:"]})],
    "decisions": [decide(c) for c in cases],
}))
`;

interface Case {
    user?: string;
    route?: string;
    readers?: string[] | null;
    matchdict?: Record<string, string>;
    index?: boolean;
    /** What devpi-server's own hook implementations answered. */
    devpi?: unknown[];
}

function run(cases: Case[]) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-reads-plugin-"));
    for (const [f, content] of Object.entries({ ...STUBS, ...readAclPlugin().files })) {
        fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
        fs.writeFileSync(path.join(dir, f), content);
    }
    const out = execFileSync("python3", ["-c", DRIVER], { input: JSON.stringify(cases), env: { ...process.env, PYTHONPATH: dir }, encoding: "utf8" });
    fs.rmSync(dir, { recursive: true, force: true });
    return JSON.parse(out) as { wrapper: Record<string, unknown>; defaults: Record<string, unknown>[]; acl_type: string; principals: unknown[]; decisions: unknown[] };
}

describe("devpi-pulumi-reads (the per-index read plugin)", () => {
    it("declares its index key for stage indexes only, as an ACL list, and gives devpi the readers", () => {
        const r = run([]);
        assert.deepEqual(r.defaults, [{ [READ_ACL_KEY]: [] }, {}]);
        assert.equal(r.acl_type, "ACLList", "devpi normalises ACL lists (e.g. :authenticated: to :AUTHENTICATED:) for this type only");
        assert.deepEqual(r.principals, [null, null, ["alice", ":AUTHENTICATED:"]], "no key or an empty list: devpi's default readers");
        assert.deepEqual(r.wrapper, { hookwrapper: true }, "a wrapper, so it decides over devpi-server's own answer");
    });

    it("forbids a logged-in non-reader every route of a restricted index and search, and leaves anonymous requests to the login", () => {
        const restricted = { readers: ["alice"] };
        const cases: [string, Case, unknown[]][] = [
            ["bob on alice's simple page", { user: "bob", route: "/{user}/{index}/+simple/{project}", ...restricted }, [true]],
            ["bob on alice's release file (devpi says forbidden too)", { user: "bob", route: "/{user}/{index}/+f/{relpath:.*}", devpi: [true], ...restricted }, [true]],
            ["bob on a documentation page", { user: "bob", route: "docroot", ...restricted }, [true]],
            ["alice on her own page", { user: "alice", route: "/{user}/{index}/+simple/{project}", ...restricted }, []],
            ["root everywhere", { user: "root", route: "/{user}/{index}", ...restricted }, []],
            ["anyone logged in with :AUTHENTICATED:", { user: "carol", route: "/{user}/{index}", readers: [":AUTHENTICATED:"] }, []],
            ["anonymous on a restricted page: left to the login (401)", { route: "/{user}/{index}/+simple/", ...restricted }, []],
            ["anonymous on a release file devpi itself would forbid", { route: "/{user}/{index}/+f/{relpath:.*}", devpi: [true], ...restricted }, []],
            ["bob on an index without readers", { user: "bob", route: "/{user}/{index}", readers: null }, []],
            ["bob on an index with an empty list", { user: "bob", route: "/{user}/{index}", readers: [] }, []],
            ["bob on a missing index (devpi answers 404)", { user: "bob", route: "/{user}/{index}", index: false }, []],
            ["bob on a route without an index", { user: "bob", route: "/{user}", matchdict: { user: "alice" }, ...restricted }, []],
            ["bob on no route at all", { user: "bob", ...restricted }, []],
            ["bob searching", { user: "bob", route: "search", matchdict: {} }, [true]],
            ["root searching", { user: "root", route: "search", matchdict: {} }, []],
            ["devpi's own refusal of a logged-in user stands", { user: "bob", route: "/{user}/{index}/+f/{relpath:.*}", devpi: [true], readers: null }, [true]],
        ];
        const r = run(cases.map(([, c]) => c));
        cases.forEach(([what, , want], i) => assert.deepEqual(r.decisions[i], want, what));
    });

    it("is part of the version set, and its files are written by the install script", () => {
        const p = readAclPlugin();
        assert.match(p.version, /^1\.0\.0\+[0-9a-f]{12}$/);
        assert.equal(p.files["devpi_pulumi_reads.py"], READ_ACL_PLUGIN_PY);
        assert.equal(p.files["devpi_pulumi_reads-1.0.0.dist-info/entry_points.txt"], "[devpi_server]\ndevpi_pulumi_reads = devpi_pulumi_reads\n");
        assert.match(p.files["devpi_pulumi_reads-1.0.0.dist-info/RECORD"], /^devpi_pulumi_reads\.py,,$/m);
        const base = { serverVersion: "6.20.3", webVersion: "5.1.1", web: true };
        assert.equal(venvKey({ ...base, localPlugins: [p] }), `devpi-server-6.20.3_devpi-web-5.1.1_devpi-pulumi-reads-${p.version}`);
        const without = renderInstallScript({ ...base, venvDir: "/opt/devpi/venv" });
        assert.equal(renderInstallScript({ ...base, venvDir: "/opt/devpi/venv", localPlugins: [] }), without, "no plugin: the script of before");
        const script = renderInstallScript({ ...base, venvDir: "/opt/devpi/venv", localPlugins: [p] });
        assert.match(script, /base64 -d > "\$site"\/'devpi_pulumi_reads\.py'/);
        assert.match(script, /\^devpi-\(server\|web\|pulumi-reads\)==/);
        // The file lines decode to the plugin's files (run them against a scratch site-packages).
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "devpi-reads-install-"));
        const lines = script.split("\n").filter((l) => l.startsWith("install -d") || l.startsWith("printf %s "));
        execFileSync("bash", ["-euc", `site=${dir}\n${lines.join("\n")}`]);
        for (const [f, content] of Object.entries(p.files)) assert.equal(fs.readFileSync(path.join(dir, f), "utf8"), content, f);
        fs.rmSync(dir, { recursive: true, force: true });
    });

    it("stage index steps send the key only when given, and never send a stale one back", () => {
        assert.equal(indexSpec({ aclUpload: ["alice"] })[READ_ACL_KEY], undefined);
        assert.deepEqual(indexSpec({ aclUpload: ["alice"], aclRead: [] })[READ_ACL_KEY], []);
        assert.deepEqual(indexSpec({ aclUpload: ["alice"], aclRead: ["alice"] })[READ_ACL_KEY], ["alice"]);
        assert.notEqual(DEVPI_INDEX_API_PY, DEVPI_API_PY);
        assert.match(DEVPI_INDEX_API_PY, /INDEX_KEYS = \("bases", "volatile", "acl_upload", "mirror_whitelist", "pulumi_acl_read"\)/);
        assert.match(DEVPI_INDEX_API_PY, /\(k != "pulumi_acl_read" or k in spec\)/);
        assert.match(DEVPI_INDEX_API_PY, /if k != "pulumi_acl_read"\}, volatile=True\)/);
        const t = { devpiUrl: "http://127.0.0.1:4040", credentialFile: "/etc/devpi/root-credential" };
        assert.ok(renderApiScript(t, "index-ensure", "alice/dev").includes("pulumi_acl_read"));
        assert.ok(!renderApiScript(t, "user-ensure", "alice").includes("pulumi_acl_read"), "user steps keep their script");
    });
});
