// Browser check of @dssd/models: the draft model runs in a Web Worker on onnxruntime-web (WASM EP) in headless
// Chromium and reproduces the PyTorch fixture logits; prints the worker's per-forward latency.
// Needs `npx tsc -b` first (bundles packages/models/dist).
import { expect, test } from '@playwright/test';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT } from './fixtures.mjs';

const FIXTURES = join(ROOT, 'packages/models/test/fixtures');
const V = 4096;

const TYPES = {
  '.wasm': 'application/wasm',
  '.mjs': 'text/javascript',
  '.js': 'text/javascript',
  '.json': 'application/json',
  '.html': 'text/html',
};

async function bundle() {
  const dist = join(ROOT, 'packages/models/dist/src/index.js');
  if (!existsSync(dist))
    throw new Error(`${dist} is missing: run \`npx tsc -b\` at the repository root first`);
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: {
      worker: fileURLToPath(new URL('models-worker/worker.mjs', import.meta.url)),
      page: fileURLToPath(new URL('models-worker/page.mjs', import.meta.url)),
    },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    outdir: '/bundle',
    write: false,
    logLevel: 'error',
  });
  return Object.fromEntries(result.outputFiles.map((f) => ['/' + f.path.split('/').pop(), f.contents]));
}

/** Static server: bundles from memory, /ort/ = onnxruntime-web/dist, /models/ = models/default. */
function serve(files) {
  const mounts = [
    ['/ort/', join(ROOT, 'node_modules/onnxruntime-web/dist')],
    ['/models/', join(ROOT, 'models/default')],
  ];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const send = (status, body, type) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (path === '/')
      return send(200, '<!doctype html><script type="module" src="/page.js"></script>', 'text/html');
    if (files[path]) return send(200, files[path], 'text/javascript');
    for (const [prefix, dir] of mounts) {
      if (!path.startsWith(prefix)) continue;
      const file = resolve(dir, '.' + path.slice(prefix.length - 1));
      if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) break;
      return send(200, readFileSync(file), TYPES[extname(file)] ?? 'application/octet-stream');
    }
    send(404, 'not found', 'text/plain');
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

function rows(flat) {
  return Array.from({ length: flat.length / V }, (_, i) => flat.slice(i * V, (i + 1) * V));
}

function maxAbsDiff(a, b) {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let r = 0; r < a.length; r++) {
    expect(a[r].length).toBe(b[r].length);
    for (let i = 0; i < a[r].length; i++) m = Math.max(m, Math.abs(a[r][i] - b[r][i]));
  }
  return m;
}

test('draft model in a Web Worker (onnxruntime-web WASM) matches the PyTorch fixture', async ({ page }) => {
  test.setTimeout(180_000);
  const ids = JSON.parse(readFileSync(join(FIXTURES, 'fixture.json'), 'utf8')).ids;
  const buf = readFileSync(join(FIXTURES, 'draft-logits.f32'));
  const expected = rows(new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)));

  const server = await serve(await bundle());
  try {
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    await page.waitForFunction(() => window.modelsWorkerReady === true, null, { timeout: 30_000 });

    const missing = await page.evaluate(() => window.modelsWorker.load('/models/nothing'));
    expect(missing.error?.code).toBe('MISSING_FILE');
    expect(missing.error.message).toMatch(/config\.json not found in model \/models\/nothing/);

    const info = await page.evaluate(() => window.modelsWorker.load('/models/draft'));
    expect(info.error, info.error?.message).toBeFalsy();
    expect(info.config.vocabSize).toBe(V);
    expect(info.config.maxContext).toBe(512);
    expect(info.hash).toBe('62db5109187a4a3a9b5b9245852a800bb9dae30756ecab3544f451ba281fcfa0');

    const text = 'naïve café — 中文 🙂\ttabs\n\n  spaces   3.14159';
    const enc = await page.evaluate((t) => window.modelsWorker.encode(t), text);
    expect(enc.slice(0, 8)).toEqual([2380, 196, 176, 309, 1335, 103, 196, 170]);
    expect(await page.evaluate((e) => window.modelsWorker.decode(e), enc)).toBe(text);

    const full = rows(
      await page.evaluate(async (x) => Array.from(await window.modelsWorker.forward(x)), ids),
    );
    const fullDiff = maxAbsDiff(full, expected);
    expect(fullDiff, `browser vs PyTorch: ${fullDiff}`).toBeLessThanOrEqual(2e-3);

    const inc = await page.evaluate(async (x) => {
      const r = await window.modelsWorker.incremental(x);
      return { rows: Array.from(r.rows), block: Array.from(r.block), half: r.half };
    }, ids);
    const incDiff = maxAbsDiff(rows(inc.rows), expected);
    expect(incDiff, `browser incremental vs PyTorch: ${incDiff}`).toBeLessThanOrEqual(2e-3);
    const blockDiff = maxAbsDiff(rows(inc.block), expected.slice(inc.half, inc.half + 5));
    expect(blockDiff, `browser truncate + 5-token block vs PyTorch: ${blockDiff}`).toBeLessThanOrEqual(2e-3);

    const longIds = Array.from({ length: 133 }, (_, i) => ids[i % ids.length]);
    const lat = await page.evaluate((x) => window.modelsWorker.latency(x, 30), longIds);
    console.log(
      `browser worker (WASM EP, 1 thread), draft: max |diff| full ${fullDiff.toExponential(2)}, ` +
        `incremental ${incDiff.toExponential(2)}; median ms: 1 token @128 ${lat.one.toFixed(2)}, ` +
        `5 tokens @128 ${lat.five.toFixed(2)}, prefill 128 ${lat.prefill.toFixed(2)}`,
    );
    expect(errors).toEqual([]);
  } finally {
    server.close();
  }
});
