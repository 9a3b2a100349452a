#!/usr/bin/env node
// Structure checks run by `npm run lint`: no import cycles inside a package's sources, no reaching into another
// package's files by path, and production code free of test tools (the testing entry point, planted bugs).
import fs from 'node:fs';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const PACKAGES = [
  'packages/kernel',
  'packages/codec',
  'packages/models',
  'packages/protocol',
  'edge-node',
  'web',
  'bench',
];
/** Sources that may use test tools: the testing entry point itself, the drills, benchmarks and tests. */
const TOOLS = [/\/testing\//, /edge-node\/src\/drills\//, /^bench\//, /\/test\//];

function walk(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : /\.ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;
const problems = [];
const rel = (p) => path.relative(root, p);

for (const pkg of PACKAGES) {
  const files = [
    ...walk(path.join(root, pkg, 'src')),
    ...walk(path.join(root, pkg, 'test')),
    ...walk(path.join(root, pkg, 'bench')),
  ];
  const graph = new Map();
  for (const f of files) {
    const text = fs.readFileSync(f, 'utf8');
    const deps = [];
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      if (
        /^@dssd\/[^/]+\/(dist|src)\b/.test(spec) ||
        /\.\.\/(\.\.\/)+(packages|edge-node|web|bench)\//.test(spec)
      )
        problems.push(`${rel(f)}: reaches into another package's files ('${spec}'); import its entry point`);
      const production = !TOOLS.some((re) => re.test(rel(f)));
      if (production && (/\/testing(\/|\.js|$)/.test(spec) || spec === '@dssd/protocol/testing'))
        problems.push(`${rel(f)}: production code imports the test tools ('${spec}')`);
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(f), spec).replace(/\.js$/, '.ts');
        if (files.includes(target)) deps.push(target);
      }
    }
    if (!TOOLS.some((re) => re.test(rel(f))) && /\bplanted(Bug|Rules)\b|PlantedBug|PLANTED_BUGS/.test(text))
      problems.push(`${rel(f)}: production code mentions planted bugs`);
    graph.set(f, deps);
  }
  // Depth-first search for a back edge: each cycle is reported once, by its path.
  const state = new Map();
  const stack = [];
  const visit = (f) => {
    state.set(f, 1);
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 1)
        problems.push(`import cycle: ${[...stack.slice(stack.indexOf(d)), d].map(rel).join(' → ')}`);
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 2);
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
}

if (problems.length) {
  process.stderr.write(`structure check failed:\n  ${problems.join('\n  ')}\n`);
  process.exit(1);
}
process.stdout.write(
  'structure: no import cycles, no cross-package paths, no test tools in production code\n',
);
