/**
 * scripts/check-sizes.mjs (part of `npm run lint`): files over 350 lines and functions over 80
 * fail with FILE:LINE and the count; exactly at the limits passes; a missing directory is skipped.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

const SCRIPT = path.join(__dirname, "../../scripts/check-sizes.mjs");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "check-sizes-"));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs the checker on a fresh directory holding `files` (relative path to content). */
function check(files: Record<string, string>): { status: number | null; out: string } {
    const dir = fs.mkdtempSync(path.join(tmp, "case-"));
    for (const [name, content] of Object.entries(files)) {
        fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
        fs.writeFileSync(path.join(dir, name), content);
    }
    const r = spawnSync(process.execPath, [SCRIPT, dir, path.join(dir, "missing")], { cwd: dir, encoding: "utf8" });
    return { status: r.status, out: r.stdout + r.stderr };
}

/** A function of `lines` lines in all (signature and closing brace included). */
const fn = (head: string, lines: number) => `${head} {\n${"    x++;\n".repeat(lines - 2)}}\n`;
const filler = (lines: number) => "// filler\n".repeat(lines);

describe("check-sizes", () => {
    it("passes files and functions exactly at the limits; TSDoc before a function does not count", () => {
        const r = check({
            "a.ts": `let x = 0;\n/**\n * doc\n */\n${fn("export function f()", 80)}${filler(350 - 4 - 80)}`,
            "sub/b.ts": `let x = 0;\nexport class C {\n${fn("    constructor()", 80)}}\n`,
        });
        assert.equal(r.status, 0, r.out);
        assert.match(r.out, /2 files within the limits; largest 350 lines/);
    });

    it("fails a file over 350 lines and each kind of function over 80, naming file, line and count", () => {
        const r = check({
            "big.ts": filler(351),
            "sub/fns.ts": ["let x = 0;", fn("export function decl()", 81), fn("export const arrow = () =>", 81), fn("export const expr = function ()", 81), fn("export function ok()", 80)].join("\n"),
            "sub/cls.ts": `let x = 0;\nexport class K {\n${fn("    constructor()", 81)}${fn("    method()", 81)}${fn("    get value()", 81)}}\n`,
        });
        assert.equal(r.status, 1, r.out);
        assert.match(r.out, /^ {2}big\.ts:1: file has 351 lines \(limit 350\)$/m);
        assert.match(r.out, /^ {2}sub\/fns\.ts:2: decl spans 81 lines \(limit 80\)$/m);
        for (const name of ["arrow", "expr"]) assert.match(r.out, new RegExp(`^  sub/fns\\.ts:\\d+: ${name} spans 81 lines`, "m"));
        assert.match(r.out, /^ {2}sub\/cls\.ts:3: constructor of K spans 81 lines/m);
        for (const name of ["method", "value"]) assert.match(r.out, new RegExp(`^  sub/cls\\.ts:\\d+: ${name} spans 81 lines`, "m"));
        assert.doesNotMatch(r.out, /\bok spans/);
        assert.match(r.out, /7 over the limits/);
    });

    it("counts a nested function within its parent too", () => {
        const inner = fn("    const inner = () =>", 79);
        const r = check({ "n.ts": `let x = 0;\nexport function outer() {\n${inner}    return inner;\n}\n` });
        assert.equal(r.status, 1, r.out);
        assert.match(r.out, /n\.ts:2: outer spans 82 lines/);
        assert.doesNotMatch(r.out, /inner spans/);
    });
});
