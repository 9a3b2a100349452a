// Bundles the browser device into web/dist/ (served by the edge at '/'): index.html (chat page), embed.html (the
// widget's iframe page), app.js, worker.js (+ chunks loaded on demand: ORT's WebGPU build, web-llm), widget.js,
// styles.css. Input: the tsc output in dist/src (run `tsc -b` first; `npm run build` does both).
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'dist/src');
const out = join(here, 'dist');
if (!existsSync(join(src, 'app.js')))
  throw new Error(`${src}/app.js is missing: run \`tsc -b\` in web/ first`);

// Old bundles (hashed chunk names change between builds).
for (const f of readdirSync(out)) if (/^chunk-.*\.js(\.map)?$/.test(f)) rmSync(join(out, f));
mkdirSync(out, { recursive: true });

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  outdir: out,
  sourcemap: true,
  logLevel: 'warning',
  // simple-peer (via readable-stream) expects Node's `global` and `process`; `events` comes from npm.
  define: { global: 'globalThis' },
  inject: [join(here, 'process-shim.mjs')],
  legalComments: 'none',
};

// app and worker share chunks; the dynamic imports (onnxruntime-web's jsep build, web-llm) become their own.
await build({
  ...common,
  entryPoints: { app: join(src, 'app.js'), worker: join(src, 'worker.js') },
  splitting: true,
  chunkNames: 'chunk-[hash]',
  minify: true,
});
// The widget is loaded by other sites: one small file, no shims needed.
await build({
  ...common,
  entryPoints: { widget: join(src, 'widget.js') },
  inject: [],
  define: {},
  minify: true,
});
for (const f of ['index.html', 'embed.html', 'styles.css'])
  copyFileSync(join(here, 'static', f), join(out, f));
// The page links to these (the edge serves nothing outside web/dist); .txt so the edge serves them as text.
copyFileSync(join(here, '../README.md'), join(out, 'README.txt'));
copyFileSync(join(here, '../models/README.md'), join(out, 'model-card.txt'));
console.log(`web: built ${out}`);
