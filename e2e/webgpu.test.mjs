// The WebGPU path of the page's Worker (`webgpu=any`), on Chromium's software adapter (`--enable-unsafe-webgpu`:
// SwiftShader, vendor google, no shader-f16): the stand-in's 4-bit draft without float16 tensors
// (draft-q4-f32: MatMulNBits, fp32 KV cache) runs on the WebGPU execution provider, its logits match the numpy
// reference, and a short greedy answer equals edge-only decoding. The fp16 draft is refused with the reason:
// onnxruntime-web's WGSL for float16 tensors needs shader-f16, which this adapter lacks. Speeds printed against
// WASM on the same model are of a SOFTWARE adapter, not of a GPU.
import {
  QWEN_STANDIN_DIRS,
  STANDIN_MISSING,
  arChat,
  askPage,
  expect,
  referenceRows,
  test,
  waitConnected,
} from './standin.mjs';
import { query } from './fixtures.mjs';

/**
 * Max |logit difference| allowed against the numpy float32 reference: WebGPU kernels accumulate in another order
 * than numpy and WASM (measured on SwiftShader: 9.3e-3 on logits up to ~95 in magnitude; WASM stays within 2e-3), so
 * 2.5e-2 absolute, and the top token of every row must agree.
 */
const PARITY = 2.5e-2;
const TOKENS = 8;
const GREEDY_PAGE = { temperature: 0, gamma: 4, maxTokens: TOKENS, topK: 0, topP: 1, mode: 'dssd' };

test.skip(!!STANDIN_MISSING, STANDIN_MISSING ?? '');

/** The page's draft logits for `ids` on a fresh cache (the Worker's own forward), as base64 float32. */
async function pageLogits(page, ids, width) {
  const b64 = await page.evaluate(
    async ([ids, width]) => {
      const d = window.dssdApp.device.drafter;
      const rows = await d.forward(ids);
      d.truncate(0);
      const out = new Float32Array(rows.length * width);
      rows.forEach((r, i) => out.set(r.subarray(0, width), i * width));
      const bytes = new Uint8Array(out.buffer);
      let s = '';
      for (let i = 0; i < bytes.length; i += 0x8000)
        s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return btoa(s);
    },
    [ids, width],
  );
  const buf = Buffer.from(b64, 'base64');
  const flat = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  return ids.map((_, i) => flat.subarray(i * width, (i + 1) * width));
}

/** Median ms of one draft forward of 1 token after `ids` are cached, through the page's Worker. */
async function pageStepMs(page, ids, reps) {
  return page.evaluate(
    async ([ids, reps]) => {
      const d = window.dssdApp.device.drafter;
      await d.forward(ids);
      const times = [];
      for (let i = 0; i < reps + 1; i++) {
        d.truncate(ids.length);
        const t0 = performance.now();
        await d.forward([ids[i % ids.length]]);
        if (i >= 1) times.push(performance.now() - t0);
      }
      d.truncate(0);
      times.sort((a, b) => a - b);
      return times[times.length >> 1];
    },
    [ids, reps],
  );
}

function maxAbsDiff(a, b) {
  let m = 0;
  for (let r = 0; r < a.length; r++)
    for (let i = 0; i < a[r].length; i++) m = Math.max(m, Math.abs(a[r][i] - b[r][i]));
  return m;
}

async function openStandinPage(context, edge, extra) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(edge.url + query({ ...GREEDY_PAGE, ...extra }));
  return { page, errors };
}

test('WebGPU opt-in on the software adapter: the 4-bit fp32-KV draft runs on the WebGPU EP, logits match, greedy equals edge-only', async ({
  context,
  standin,
  standinEdge,
}) => {
  test.setTimeout(300_000);
  const edge = await standinEdge(QWEN_STANDIN_DIRS.draftQ4F32);
  const V = standin.target.config.vocabSize;
  const { ids, rows: expected } = await referenceRows('draft-q4-f32', V);

  const gpu = await openStandinPage(context, edge, { webgpu: 'any' });
  await waitConnected(gpu.page);
  await expect(gpu.page.getByRole('status')).toContainText('webgpu execution provider (software adapter)');
  const logits = await pageLogits(gpu.page, ids, V);
  const diff = maxAbsDiff(logits, expected);
  expect(diff, `WebGPU (software adapter) vs numpy: max |diff| ${diff}`).toBeLessThanOrEqual(PARITY);
  const argmax = (r) => r.reduce((best, x, i) => (x > r[best] ? i : best), 0);
  expect(logits.map(argmax)).toEqual(expected.map(argmax));
  const scale = Math.max(...expected.map((r) => r.reduce((m, x) => Math.max(m, Math.abs(x)), 0)));
  const gpuMs = await pageStepMs(gpu.page, ids, 4);
  const [ref] = await arChat(edge.url, standin.draft, ['What is the capital of France?'], TOKENS);
  const r = await askPage(gpu.page, 'What is the capital of France?');
  expect(r.alert).toBeNull();
  expect(r.tokens, 'page (dssd, draft on WebGPU) vs edge-only').toEqual(ref.tokens);
  expect(gpu.errors).toEqual([]);
  await gpu.page.close();

  // The same model on WASM in the same browser, for the speed comparison.
  const wasm = await openStandinPage(context, edge, { webgpu: 'off' });
  await waitConnected(wasm.page);
  await expect(wasm.page.getByRole('status')).toContainText('wasm execution provider');
  const wasmMs = await pageStepMs(wasm.page, ids, 4);
  await wasm.page.close();
  console.log(
    `  [webgpu] draft-q4-f32 in the Worker, 1-token step after ${ids.length} cached (median, logits to the page ` +
      `included): WebGPU on the SOFTWARE adapter (SwiftShader) ${gpuMs.toFixed(1)} ms, WASM ${wasmMs.toFixed(1)} ms ` +
      `(×${(gpuMs / wasmMs).toFixed(1)}); max |logit diff| vs numpy ${diff.toExponential(2)} ` +
      `(largest |logit| ${scale.toFixed(1)}); ` +
      `greedy ${TOKENS} tokens = edge-only (${r.stats.tokensPerSecond.toFixed(2)} tok/s)`,
  );
});

test('WebGPU opt-in: a float16 draft on an adapter without shader-f16 is refused with the reason', async ({
  context,
  standinEdge,
}) => {
  test.setTimeout(180_000);
  const edge = await standinEdge(QWEN_STANDIN_DIRS.draftQ4);
  const { page } = await openStandinPage(context, edge, { webgpu: 'any' });
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('no shader-f16 feature', { timeout: 120_000 });
  await expect(alert).toContainText('webgpu=off');
  await expect(alert).toHaveAttribute('data-code', 'ModelLoad');
});
