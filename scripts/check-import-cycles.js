#!/usr/bin/env node
/**
 * Fails when the TypeScript imports of src/, test/ and bench/ form a cycle: between files, or
 * between src/'s folders (a file directly in src/ counts as a folder of its own). Type-only
 * imports count too: a cycle of types is a tangle all the same. Prints every cycle found.
 *
 *   node scripts/check-import-cycles.js
 */
const fs = require("node:fs");
const path = require("node:path");
const ts = require("typescript");

const ROOT = path.resolve(__dirname, "..");
const ROOTS = ["src", "test", "bench"];

function sourceFiles(dir) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (/\.ts$/.test(entry.name) && !entry.name.endsWith(".d.ts")) out.push(full);
  }
  return out;
}

const files = ROOTS.filter((r) => fs.existsSync(path.join(ROOT, r))).flatMap((r) => sourceFiles(path.join(ROOT, r)));
const options = { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10, allowJs: false };
const host = ts.createCompilerHost(options);

/** file → the files of this repository (outside gen/) it imports. */
const graph = new Map();
for (const file of files) {
  const info = ts.preProcessFile(fs.readFileSync(file, "utf8"), true, true);
  const targets = new Set();
  for (const ref of info.importedFiles) {
    const resolved = ts.resolveModuleName(ref.fileName, file, options, host).resolvedModule;
    if (!resolved || resolved.isExternalLibraryImport) continue;
    const target = path.resolve(resolved.resolvedFileName);
    if (target.startsWith(path.join(ROOT, "gen") + path.sep)) continue;
    targets.add(target);
  }
  graph.set(file, [...targets]);
}

/** Every elementary cycle's first occurrence, by depth-first search (Tarjan's strong components). */
function cycles(nodes, edges) {
  let index = 0;
  const stack = [];
  const onStack = new Set();
  const idx = new Map();
  const low = new Map();
  const found = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of edges(v)) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || edges(v).includes(v)) found.push(component.reverse());
    }
  };
  for (const v of nodes) if (!idx.has(v)) visit(v);
  return found;
}

const rel = (f) => path.relative(ROOT, f);
const fileCycles = cycles([...graph.keys()], (f) => graph.get(f) ?? []);

const SRC = path.join(ROOT, "src") + path.sep;
const folderOf = (f) => {
  const parts = path.relative(SRC, f).split(path.sep);
  return parts.length === 1 ? parts[0].replace(/\.ts$/, "") : parts[0];
};
const folderEdges = new Map();
for (const [file, targets] of graph) {
  if (!file.startsWith(SRC)) continue;
  const from = folderOf(file);
  if (!folderEdges.has(from)) folderEdges.set(from, new Set());
  for (const t of targets) if (t.startsWith(SRC) && folderOf(t) !== from) folderEdges.get(from).add(folderOf(t));
}
const folderCycles = cycles([...folderEdges.keys()], (f) => [...(folderEdges.get(f) ?? [])]);

for (const c of fileCycles) console.error(`files that import each other in a cycle: ${c.map(rel).join(", ")}`);
for (const c of folderCycles) console.error(`folders of src/ that import each other in a cycle: ${c.join(", ")}`);
if (fileCycles.length + folderCycles.length > 0) process.exit(1);
console.log(`no import cycles among ${files.length} files and ${folderEdges.size} folders of src/`);
