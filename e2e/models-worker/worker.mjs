// Web Worker side of e2e/models-worker.test.mjs: @dssd/models on onnxruntime-web (WASM EP), exposed with comlink.
import * as Comlink from 'comlink';
import * as ort from 'onnxruntime-web/wasm';
import { fetchLoader, loadModel } from '@dssd/models';

ort.env.wasm.wasmPaths = '/ort/'; // required after bundling, before the first session
ort.env.wasm.numThreads = 1; // the page is not cross-origin isolated

let model;

function flat(rows) {
  const out = new Float32Array(rows.length * (rows[0]?.length ?? 0));
  rows.forEach((r, i) => out.set(r, i * r.length));
  return Comlink.transfer(out, [out.buffer]);
}

async function median(reps, setup, run) {
  const times = [];
  for (let i = 0; i < reps + 3; i++) {
    setup();
    const t0 = performance.now();
    await run();
    if (i >= 3) times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

Comlink.expose({
  async load(url) {
    try {
      model = await loadModel(url, { ort, loader: fetchLoader(), executionProviders: ['wasm'] });
    } catch (e) {
      return { error: { code: e.code, message: e.message } };
    }
    return { config: { ...model.config }, hash: model.tokenizerHash };
  },
  encode(text) {
    return model.tokenizer.encode(text);
  },
  decode(ids) {
    return model.tokenizer.decode(ids);
  },
  /** Full recompute: one forward over all ids. */
  async forward(ids) {
    const s = model.createSession();
    const rows = await s.forward(ids);
    const out = flat(rows);
    s.dispose();
    return out;
  },
  /** Token by token, then truncate to half and continue with a 5-token block. */
  async incremental(ids) {
    const s = model.createSession();
    const rows = [];
    for (const id of ids) rows.push(Float32Array.from(await s.decodeOne(id)));
    const half = ids.length >> 1;
    s.truncate(half);
    const block = await s.forward(ids.slice(half, half + 5));
    s.dispose();
    return { rows: flat(rows), block: flat(block), half };
  },
  /** Median per-forward latency (ms) in this worker: 1 and 5 tokens after 128 cached, and a 128-token prefill. */
  async latency(ids, reps) {
    const s = model.createSession();
    await s.forward(ids.slice(0, 128));
    const one = await median(
      reps,
      () => s.truncate(128),
      () => s.forward([ids[128]]),
    );
    const five = await median(
      reps,
      () => s.truncate(128),
      () => s.forward(ids.slice(128, 133)),
    );
    const prefill = await median(
      Math.ceil(reps / 3),
      () => s.reset(),
      () => s.prefill(ids.slice(0, 128)),
    );
    s.dispose();
    return { one, five, prefill };
  },
});
