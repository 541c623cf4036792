/**
 * The README's "Project layout" section against `git ls-files`: every path it names exists, and
 * every file of config/ and components/ and every top-level entry is named in it, so a newcomer
 * reading it sees the tree as it is.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

const ROOT = path.resolve(__dirname, "../..");

/** The code block under "## Project layout". */
function layoutBlock(): string {
    const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
    const section = readme.split(/^## Project layout$/m)[1]?.split(/^## /m)[0] ?? "";
    const block = /```\n([\s\S]*?)```/.exec(section);
    assert.ok(block, "README.md has a Project layout section with a code block");
    return block[1];
}

const tracked = execFileSync("git", ["ls-files"], { cwd: ROOT, encoding: "utf8" }).trim().split("\n");

describe("the README's project layout", () => {
    const block = layoutBlock();
    const tokens = [
        ...block.matchAll(/(?<![@\w/])(?:[A-Za-z0-9_./-]+\.(?:ts|mjs|sh|md|yaml|json)\b|[A-Za-z0-9_.-]+(?:\/[A-Za-z0-9_.-]+)*\/(?![A-Za-z0-9_.-])|\.[A-Za-z0-9_-]+(?:\/[A-Za-z0-9_.-]+)?)/g),
    ].map((m) => m[0]);

    it("names only files and folders that exist in the repository", () => {
        const dirs = new Set(
            tracked.flatMap((f) =>
                f
                    .split("/")
                    .slice(0, -1)
                    .map((_, i, parts) => `${parts.slice(0, i + 1).join("/")}/`),
            ),
        );
        const basenames = new Set(tracked.map((f) => path.basename(f)));
        const subdirs = new Set([...dirs].map((d) => `${path.basename(d)}/`));
        const missing = tokens.filter(
            (t) => !(tracked.includes(t) || dirs.has(t) || basenames.has(t) || subdirs.has(t) || tracked.some((f) => f.endsWith(`/${t}`)) || [...dirs].some((d) => d.endsWith(`/${t}`))),
        );
        assert.deepEqual(missing, []);
    });

    it("names every file of config/ and components/ and every top-level entry", () => {
        const named = (f: string) => tokens.some((t) => t === f || t === path.basename(f) || f.endsWith(`/${t}`));
        const sources = tracked.filter((f) => /^(config|components)\//.test(f));
        assert.deepEqual(
            sources.filter((f) => !named(f)),
            [],
        );
        const topLevel = [...new Set(tracked.map((f) => (f.includes("/") ? `${f.split("/")[0]}/` : f)))];
        assert.deepEqual(
            topLevel.filter((t) => !tokens.some((k) => k === t || k.startsWith(t) || (t === ".ci/" && k === ".ci/run"))),
            [],
        );
    });
});
