// Type-checks Grafana dashboard JSON files against the dashboard model of
// Grafana's published schema (the npm package @grafana/schema), with the
// TypeScript compiler (npm package typescript). @grafana/schema ships
// TypeScript types only, no JSON Schema, so each dashboard becomes one
// TypeScript file: `const dashboard: JSONOf<Dashboard> = <the JSON>;`.
// JSONOf turns the schema's enums into the strings and numbers that JSON
// holds; an object literal gets TypeScript's excess property check, so an
// unknown key is an error as well as a wrong type or a missing field.
// __requires and __inputs (the export format's import hints, not part of
// the dashboard model) are allowed at the top.
//
//   node grafana-schema-check.mjs MODULES_DIR dashboard.json...
//
// MODULES_DIR is the folder holding node_modules/@grafana/schema and
// node_modules/typescript. Errors are printed as FILE:LINE:COL: message,
// with the line and column of the JSON file; the exit code is 1 when there
// are any, 2 for a usage or setup problem.
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const [modulesDir, ...files] = process.argv.slice(2);
if (!modulesDir || files.length === 0) {
  console.error("usage: node grafana-schema-check.mjs MODULES_DIR dashboard.json...");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modulesDir), "package.json"));
let ts;
try {
  ts = require("typescript");
  require.resolve("@grafana/schema/package.json");
} catch (err) {
  console.error(`${modulesDir}: typescript and @grafana/schema are not installed there (npm install --prefix ${modulesDir} ...): ${err.message}`);
  process.exit(2);
}

// The header is one line that ends where the JSON begins, so that the
// TypeScript file's lines are the JSON file's.
const header =
  `import type { Dashboard } from "@grafana/schema"; ` +
  "type JSONOf<T> = T extends string ? `${T}` : T extends number | boolean | null | undefined ? T : " +
  "T extends ReadonlyArray<infer U> ? Array<JSONOf<U>> : T extends object ? { [K in keyof T]: JSONOf<T[K]> } : T; " +
  "export const dashboard: JSONOf<Dashboard> & { __requires?: unknown[]; __inputs?: unknown[] } = ";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "grafana-schema-check-"));
try {
  fs.symlinkSync(path.join(path.resolve(modulesDir), "node_modules"), path.join(work, "node_modules"), "dir");
  const sources = new Map();
  files.forEach((f, i) => {
    const ts_ = path.join(work, `dashboard${i}.ts`);
    fs.writeFileSync(ts_, header + fs.readFileSync(f, "utf8").trimEnd() + ";\n");
    sources.set(ts_, f);
  });
  const program = ts.createProgram([...sources.keys()], {
    noEmit: true, strict: true, skipLibCheck: true, target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler,
  });
  const diags = ts.getPreEmitDiagnostics(program);
  for (const d of diags) {
    const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n  ");
    if (!d.file || !sources.has(d.file.fileName)) {
      console.log(`schema check: ${msg}`);
      continue;
    }
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start ?? 0);
    const col = line === 0 ? Math.max(0, character - header.length) : character;
    console.log(`${sources.get(d.file.fileName)}:${line + 1}:${col + 1}: ${msg}`);
  }
  if (diags.length === 0) {
    console.log(`${files.length} dashboards match @grafana/schema ${require("@grafana/schema/package.json").version} (typescript ${ts.version})`);
  }
  process.exitCode = diags.length ? 1 : 0;
} finally {
  fs.rmSync(work, { recursive: true, force: true });
}
