// Size limits of the code a maintainer reads first (issue 17): no .ts file under components/ or
// config/ over 350 lines, and no function in them (declaration, expression, arrow function,
// method, accessor, constructor) spanning over 80 lines, from its first token to its closing
// brace (TSDoc and other leading comments not counted; a nested function counts inside its
// parent too). Parsed with the project's own TypeScript, so it sees what tsc sees.
//
//   node scripts/check-sizes.mjs [DIR...]   (default: components config; a missing DIR is skipped)
//
// Prints every violation as FILE:LINE with its count and exits 1 if there is any; part of
// `npm run lint`.
import * as fs from "node:fs";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const MAX_FILE_LINES = 350;
const MAX_FUNCTION_LINES = 80;

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dirs = process.argv.length > 2 ? process.argv.slice(2).map((d) => path.resolve(d)) : ["components", "config"].map((d) => path.join(root, d));

/** Every .ts file under `dir`, sorted; none when it does not exist. */
function tsFiles(dir) {
    if (!fs.existsSync(dir)) return [];
    return fs
        .readdirSync(dir, { withFileTypes: true })
        .sort((a, b) => a.name.localeCompare(b.name))
        .flatMap((e) => {
            const p = path.join(dir, e.name);
            if (e.isDirectory()) return e.name === "node_modules" ? [] : tsFiles(p);
            return e.isFile() && e.name.endsWith(".ts") ? [p] : [];
        });
}

/** Lines as an editor numbers them: a final newline does not start another line (as `wc -l`). */
function lineCount(text) {
    if (text === "") return 0;
    return text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
}

/** A readable name for a function node: its own, or the variable/property/class member it is assigned to. */
function functionName(node) {
    if (ts.isConstructorDeclaration(node)) {
        const cls = node.parent;
        return `constructor of ${cls.name ? cls.name.text : "anonymous class"}`;
    }
    if (node.name) return node.name.getText();
    const p = node.parent;
    if ((ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p)) && p.name) return p.name.getText();
    return ts.isArrowFunction(node) ? "arrow function" : "function expression";
}

function isFunctionLike(node) {
    return (
        ts.isFunctionDeclaration(node) ||
        ts.isFunctionExpression(node) ||
        ts.isArrowFunction(node) ||
        ts.isMethodDeclaration(node) ||
        ts.isConstructorDeclaration(node) ||
        ts.isGetAccessorDeclaration(node) ||
        ts.isSetAccessorDeclaration(node)
    );
}

const violations = [];
let files = 0;
let largestFile = { lines: 0, where: "" };
let longestFunction = { lines: 0, where: "" };
for (const file of dirs.flatMap(tsFiles)) {
    files++;
    const text = fs.readFileSync(file, "utf8");
    const rel = path.relative(process.cwd(), file);
    const lines = lineCount(text);
    if (lines > largestFile.lines) largestFile = { lines, where: rel };
    if (lines > MAX_FILE_LINES) violations.push(`${rel}:1: file has ${lines} lines (limit ${MAX_FILE_LINES})`);
    const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    const visit = (node) => {
        if (isFunctionLike(node) && node.body) {
            const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line + 1;
            const end = source.getLineAndCharacterOfPosition(node.getEnd()).line + 1;
            const span = end - start + 1;
            const where = `${rel}:${start}`;
            if (span > longestFunction.lines) longestFunction = { lines: span, where: `${where} (${functionName(node)})` };
            if (span > MAX_FUNCTION_LINES) violations.push(`${where}: ${functionName(node)} spans ${span} lines (limit ${MAX_FUNCTION_LINES})`);
        }
        ts.forEachChild(node, visit);
    };
    visit(source);
}

if (violations.length > 0) {
    console.error(`check-sizes: ${violations.length} over the limits (files ${MAX_FILE_LINES} lines, functions ${MAX_FUNCTION_LINES}):`);
    for (const v of violations) console.error(`  ${v}`);
    process.exit(1);
}
console.log(
    `check-sizes: ${files} files within the limits; largest ${largestFile.lines} lines (${largestFile.where || "-"}), ` +
        `longest function ${longestFunction.lines} lines (${longestFunction.where || "-"})`,
);
