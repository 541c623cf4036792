// Compiles the stand-in provider plugins with esbuild (our sources bundled,
// node_modules left external) to node_modules/.cache/offline-providers/<name>.js,
// so a plugin starts in about a third of the time it takes through the tsx
// loader. launch.sh runs this whenever a source file is newer than the bundle.
// The bundle lives under node_modules so that it is never committed or linted
// and resolves the repository's packages. Usage: node build.mjs [command] [tls]
import { renameSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildSync } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "..", "node_modules", ".cache", "offline-providers");
const names = process.argv.length > 2 ? process.argv.slice(2) : ["command", "tls"];
mkdirSync(outdir, { recursive: true });
for (const name of names) {
    const outfile = join(outdir, `${name}.js`);
    const tmp = `${outfile}.${process.pid}.tmp`;
    buildSync({
        entryPoints: [join(here, "src", name, "main.ts")],
        bundle: true,
        platform: "node",
        target: "node22",
        format: "cjs",
        packages: "external",
        outfile: tmp,
        logLevel: "warning",
    });
    renameSync(tmp, outfile); // atomic: a concurrently starting plugin sees the old or the new bundle
}
