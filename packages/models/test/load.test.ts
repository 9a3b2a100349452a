import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  ModelError,
  ModelErrorCode,
  browserExecutionProviders,
  fetchLoader,
  loadModel,
} from '../src/index.js';
import type { LoadModelOptions, ModelLoader } from '../src/index.js';
import { importOnnxRuntimeNode } from '../src/node.js';
import { DRAFT, FIXTURES, FIXTURE_IDS, maxAbsDiff, overlayLoader, readRows } from './helpers.js';

const ort = await importOnnxRuntimeNode();
const opts = (loader: ModelLoader): LoadModelOptions => ({
  ort,
  loader,
  sessionOptions: { intraOpNumThreads: 1, interOpNumThreads: 1 },
});
const draftTokenizer = JSON.parse(readFileSync(DRAFT + '/tokenizer.json', 'utf8'));
const draftConfig = JSON.parse(readFileSync(DRAFT + '/config.json', 'utf8'));
const draftOnnx = new Uint8Array(readFileSync(DRAFT + '/onnx/model.onnx'));
const reference = readRows(FIXTURES + 'draft-logits.f32', 4096);

function fails(code: ModelErrorCode, ...fragments: string[]) {
  return (e: unknown) => {
    assert.ok(e instanceof ModelError, `expected ModelError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments)
      assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${f}`);
    return true;
  };
}

/** The draft's tokenizer with `n` extra added tokens at ids 4096.. (special or not). */
function withAddedTokens(n: number, special: boolean): string {
  const t = structuredClone(draftTokenizer);
  for (let i = 0; i < n; i++) {
    t.added_tokens.push({
      id: 4096 + i,
      content: `<|extra_${i}|>`,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special,
    });
  }
  return JSON.stringify(t);
}

test('missing files are named', async () => {
  for (const file of ['config.json', 'tokenizer.json']) {
    await assert.rejects(
      loadModel(DRAFT, opts(overlayLoader(DRAFT, { [file]: null }))),
      fails(ModelErrorCode.MissingFile, file, DRAFT),
    );
  }
  // Listing loader: no onnx/ folder, or one without model*.onnx.
  await assert.rejects(
    loadModel(DRAFT, opts(overlayLoader(DRAFT, {}, null))),
    fails(ModelErrorCode.MissingFile, 'onnx/model.onnx', 'no onnx/ folder'),
  );
  await assert.rejects(
    loadModel(DRAFT, opts(overlayLoader(DRAFT, {}, ['decoder.onnx']))),
    fails(ModelErrorCode.MissingFile, 'onnx/model.onnx', 'decoder.onnx'),
  );
  // Loader without list (like fetch): tries onnx/model.onnx and says how to pick another file.
  const noList = overlayLoader(DRAFT, { 'onnx/model.onnx': null });
  await assert.rejects(
    loadModel(DRAFT, opts({ read: noList.read })),
    fails(ModelErrorCode.MissingFile, 'onnx/model.onnx', 'modelFile'),
  );
  await assert.rejects(
    loadModel(DRAFT, { ...opts(overlayLoader(DRAFT, {})), modelFile: 'model_int8.onnx' }),
    fails(ModelErrorCode.MissingFile, 'onnx/model_int8.onnx'),
  );
});

test('onnx/model*.onnx is discovered by listing, or named explicitly', async () => {
  const listed = overlayLoader(DRAFT, { 'onnx/model_fp32.onnx': draftOnnx }, [
    'README.md',
    'model_fp32.onnx',
  ]);
  const m = await loadModel(DRAFT, opts(listed));
  assert.equal(m.layout.file, 'onnx/model_fp32.onnx');
  await m.dispose();
  const named = overlayLoader(DRAFT, { 'onnx/model.onnx': null, 'weights/decoder.onnx': draftOnnx });
  const n = await loadModel(DRAFT, { ...opts(named), modelFile: 'weights/decoder.onnx', name: 'mine' });
  assert.equal(n.layout.file, 'weights/decoder.onnx');
  assert.equal(n.config.name, 'mine');
  await n.dispose();
});

test('a graph without a KV cache is a BadLayout naming the file', async () => {
  const nopast = new Uint8Array(readFileSync(FIXTURES + 'nopast.onnx'));
  await assert.rejects(
    loadModel(DRAFT, opts(overlayLoader(DRAFT, { 'onnx/model.onnx': nopast }))),
    fails(ModelErrorCode.BadLayout, 'onnx/model.onnx', 'past_key_values', 'input_ids'),
  );
  await assert.rejects(
    loadModel(DRAFT, opts(overlayLoader(DRAFT, { 'onnx/model.onnx': new Uint8Array([1, 2, 3, 4]) }))),
    fails(ModelErrorCode.LoadFailed, 'onnx/model.onnx'),
  );
});

test('tokenizer/model disagreement: ordinary extra tokens are a VocabMismatch', async () => {
  const loader = overlayLoader(DRAFT, { 'tokenizer.json': withAddedTokens(4, false) });
  await assert.rejects(
    loadModel(DRAFT, opts(loader)),
    fails(
      ModelErrorCode.VocabMismatch,
      'tokenizer.json has 4100 tokens but onnx/model.onnx produces 4096 logits',
      '<|extra_0|>',
    ),
  );
});

test('tokenizer/model disagreement: extra special tokens are padded with -Infinity', async () => {
  const m = await loadModel(
    DRAFT,
    opts(overlayLoader(DRAFT, { 'tokenizer.json': withAddedTokens(4, true) })),
  );
  assert.equal(m.config.vocabSize, 4100);
  assert.equal(m.config.logitsRows, 4096);
  const s = m.createSession();
  const rows = await s.forward(FIXTURE_IDS.slice(0, 4));
  for (const r of rows) {
    assert.equal(r.length, 4100);
    assert.deepEqual([...r.subarray(4096)], [-Infinity, -Infinity, -Infinity, -Infinity]);
  }
  const head = rows.map((r) => r.subarray(0, 4096));
  assert.ok(maxAbsDiff(head, reference.slice(0, 4)) <= 2e-3);
  // Ids without a logits row cannot be embedded either.
  await assert.rejects(s.forward([4097]), fails(ModelErrorCode.BadToken, '4096'));
  await m.dispose();
});

test('config problems are BadConfig or BadArgument; broken JSON is LoadFailed', async () => {
  const { n_positions: _a, n_ctx: _b, ...noContext } = draftConfig;
  const loader = overlayLoader(DRAFT, { 'config.json': JSON.stringify(noContext) });
  await assert.rejects(
    loadModel(DRAFT, opts(loader)),
    fails(ModelErrorCode.BadConfig, 'max_position_embeddings'),
  );
  const m = await loadModel(DRAFT, { ...opts(loader), maxContext: 64 });
  assert.equal(m.config.maxContext, 64);
  await m.dispose();
  await assert.rejects(
    loadModel(DRAFT, { ...opts(overlayLoader(DRAFT, {})), maxContext: 4096 }),
    fails(ModelErrorCode.BadArgument, '4096', '512'),
  );
  const { eos_token_id: _c, ...noEos } = draftConfig;
  const noEosLoader = overlayLoader(DRAFT, {
    'config.json': JSON.stringify(noEos),
    'tokenizer_config.json': '{}',
  });
  await assert.rejects(loadModel(DRAFT, opts(noEosLoader)), fails(ModelErrorCode.BadConfig, 'eos_token'));
  // …but tokenizer_config.json's eos_token is enough.
  const viaTokCfg = await loadModel(
    DRAFT,
    opts(overlayLoader(DRAFT, { 'config.json': JSON.stringify(noEos) })),
  );
  assert.equal(viaTokCfg.config.eosTokenId, 0);
  await viaTokCfg.dispose();
  await assert.rejects(
    loadModel(DRAFT, opts(overlayLoader(DRAFT, { 'config.json': '{"vocab_size": 4096,' }))),
    fails(ModelErrorCode.LoadFailed, 'config.json'),
  );
  await assert.rejects(
    loadModel(DRAFT, opts(overlayLoader(DRAFT, { 'tokenizer.json': '[]' }))),
    fails(ModelErrorCode.LoadFailed, 'tokenizer.json'),
  );
});

test('fetchLoader: 404 is a missing file, other statuses and network errors are LoadFailed', async () => {
  const files = overlayLoader(DRAFT, {});
  const served: string[] = [];
  const fakeFetch = (async (input: string | URL | Request) => {
    const url = String(input);
    served.push(url);
    if (url.includes('/broken/')) return new Response('oops', { status: 500 });
    if (url.includes('/offline/')) throw new TypeError('Failed to fetch');
    const path = url.replace('http://127.0.0.1:1/models/draft', DRAFT);
    const bytes = await files.read(path);
    return bytes ? new Response(new Uint8Array(bytes).buffer) : new Response('nope', { status: 404 });
  }) as typeof fetch;
  const loader = fetchLoader(fakeFetch);
  const m = await loadModel('http://127.0.0.1:1/models/draft/', opts(loader));
  assert.equal(m.config.name, 'draft');
  assert.ok(served.includes('http://127.0.0.1:1/models/draft/onnx/model.onnx'));
  const rows = await m.createSession().forward(FIXTURE_IDS.slice(0, 2));
  assert.ok(maxAbsDiff(rows, reference.slice(0, 2)) <= 2e-3);
  await m.dispose();
  await assert.rejects(
    loadModel('http://127.0.0.1:1/models/nothing', opts(loader)),
    fails(ModelErrorCode.MissingFile, 'config.json'),
  );
  await assert.rejects(
    loadModel('http://127.0.0.1:1/broken/', opts(loader)),
    fails(ModelErrorCode.LoadFailed, 'HTTP 500'),
  );
  await assert.rejects(
    loadModel('http://127.0.0.1:1/offline/', opts(loader)),
    fails(ModelErrorCode.LoadFailed, 'Failed to fetch'),
  );
});

test('browserExecutionProviders picks WebGPU only for a real adapter', async () => {
  const g = globalThis as { navigator?: unknown };
  const had = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  const withAdapter = (adapter: unknown) =>
    Object.defineProperty(globalThis, 'navigator', {
      value: { gpu: { requestAdapter: async () => adapter } },
      configurable: true,
    });
  try {
    Object.defineProperty(globalThis, 'navigator', { value: {}, configurable: true });
    assert.deepEqual(await browserExecutionProviders(), ['wasm']);
    withAdapter(null);
    assert.deepEqual(await browserExecutionProviders(), ['wasm']);
    withAdapter({ isFallbackAdapter: true });
    assert.deepEqual(await browserExecutionProviders(), ['wasm']);
    withAdapter({ info: { isFallbackAdapter: true } });
    assert.deepEqual(await browserExecutionProviders(), ['wasm']);
    withAdapter({ isFallbackAdapter: false, info: {} });
    assert.deepEqual(await browserExecutionProviders(), ['webgpu', 'wasm']);
  } finally {
    if (had) Object.defineProperty(globalThis, 'navigator', had);
    else delete g.navigator;
  }
});
