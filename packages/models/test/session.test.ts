import test from 'node:test';
import assert from 'node:assert/strict';
import { ModelError, ModelErrorCode } from '../src/index.js';
import type { ModelSession } from '../src/index.js';
import { logitsRows } from '../src/session.js';
import { DRAFT, FIXTURES, FIXTURE_IDS, TARGET, maxAbsDiff, model, readRows } from './helpers.js';

const V = 4096;
const PARITY = 2e-3; // fp16-stored weights, fp32 compute in both PyTorch and ORT
const SAME = 1e-4; // same runtime, different ways of reaching the same positions

const reference = {
  draft: readRows(FIXTURES + 'draft-logits.f32', V),
  target: readRows(FIXTURES + 'target-logits.f32', V),
};

async function oneByOne(s: ModelSession, ids: readonly number[]): Promise<Float32Array[]> {
  const rows: Float32Array[] = [];
  for (const id of ids) rows.push(Float32Array.from(await s.decodeOne(id)));
  return rows;
}

function isModelError(code: ModelErrorCode, ...fragments: string[]) {
  return (e: unknown) => {
    assert.ok(e instanceof ModelError, `expected ModelError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    for (const f of fragments)
      assert.ok(e.message.includes(f), `message ${JSON.stringify(e.message)} lacks ${f}`);
    return true;
  };
}

test('default pair: config and layout come from the graph and config.json', async () => {
  const draft = await model(DRAFT);
  const target = await model(TARGET);
  assert.deepEqual(
    { ...draft.config },
    {
      name: 'draft',
      modelType: 'gpt2',
      vocabSize: 4096,
      logitsRows: 4096,
      maxContext: 512,
      eosTokenId: 0,
      eosTokenIds: [0],
      bosTokenId: 0,
      numLayers: 2,
      numKvHeads: 2,
      headDim: 64,
      kvType: 'float32',
    },
  );
  assert.equal(target.config.numLayers, 6);
  assert.equal(target.config.numKvHeads, 4);
  assert.equal(target.config.headDim, 64);
  assert.equal(draft.layout.positionIds, 'position_ids');
  assert.equal(draft.layout.numLogitsToKeep, null);
  assert.equal(draft.layout.file, 'onnx/model.onnx');
  assert.equal(draft.tokenizerHash, target.tokenizerHash);
});

for (const name of ['draft', 'target'] as const) {
  test(`${name}: full-recompute logits match PyTorch`, async () => {
    const s = (await model(name === 'draft' ? DRAFT : TARGET)).createSession();
    const rows = await s.forward(FIXTURE_IDS);
    assert.equal(rows.length, FIXTURE_IDS.length);
    assert.ok(rows.every((r) => r.length === V));
    const diff = maxAbsDiff(rows, reference[name]);
    assert.ok(diff <= PARITY, `max |ORT - PyTorch| = ${diff}`);
    assert.equal(s.length, FIXTURE_IDS.length);
    assert.deepEqual(s.tokens(), FIXTURE_IDS);
    s.dispose();
  });

  test(`${name}: token-by-token decoding equals full recompute`, async () => {
    const s = (await model(name === 'draft' ? DRAFT : TARGET)).createSession();
    const rows = await oneByOne(s, FIXTURE_IDS);
    assert.ok(maxAbsDiff(rows, reference[name]) <= PARITY);
    const full = (await model(name === 'draft' ? DRAFT : TARGET)).createSession();
    const fullRows = await full.forward(FIXTURE_IDS);
    const diff = maxAbsDiff(rows, fullRows);
    assert.ok(diff <= SAME, `incremental vs full: ${diff}`);
    s.dispose();
    full.dispose();
  });
}

test('scoring k tokens in one forward equals scoring them one by one', async () => {
  const m = await model(TARGET);
  const a = m.createSession();
  const b = m.createSession();
  await a.prefill(FIXTURE_IDS.slice(0, 10));
  await b.prefill(FIXTURE_IDS.slice(0, 10));
  for (const k of [1, 2, 5, 9]) {
    const start = a.length;
    const block = FIXTURE_IDS.slice(start, start + k);
    const together = await a.forward(block);
    const single = await oneByOne(b, block);
    assert.equal(together.length, k);
    assert.ok(maxAbsDiff(together, single) <= SAME, `k=${k}`);
    assert.ok(maxAbsDiff(together, reference.target.slice(start, start + k)) <= PARITY);
  }
  assert.equal(a.length, 27);
});

test('truncate then continue equals recomputing the same sequence', async () => {
  const m = await model(TARGET);
  const s = m.createSession();
  await s.forward(FIXTURE_IDS);
  s.truncate(20);
  assert.equal(s.length, 20);
  assert.deepEqual(s.tokens(), FIXTURE_IDS.slice(0, 20));
  // Same continuation: the reference rows again.
  const again = await s.forward(FIXTURE_IDS.slice(20));
  assert.ok(maxAbsDiff(again, reference.target.slice(20)) <= PARITY);
  // A different continuation (a rejected draft replaced by other tokens) vs a fresh recompute.
  s.truncate(13);
  const alt = [5, 99, 1234, 7];
  const cont = await s.forward(alt);
  const fresh = m.createSession();
  const recomputed = await fresh.forward([...FIXTURE_IDS.slice(0, 13), ...alt]);
  assert.ok(maxAbsDiff(cont, recomputed.slice(13)) <= SAME);
  // …and it really is a different continuation, so the comparison above is not vacuous.
  assert.ok(maxAbsDiff([cont[0]], [reference.target[13]]) > 0.1);
  // truncate(0) is a reset; truncate(length) is a no-op.
  s.truncate(s.length);
  assert.equal(s.length, 17);
  s.truncate(0);
  assert.equal(s.length, 0);
  const first = await s.forward(FIXTURE_IDS.slice(0, 3));
  assert.ok(maxAbsDiff(first, reference.target.slice(0, 3)) <= PARITY);
  assert.throws(() => s.truncate(4), isModelError(ModelErrorCode.BadArgument, '3 tokens', '4'));
  assert.throws(() => s.truncate(-1), isModelError(ModelErrorCode.BadArgument));
  assert.throws(() => s.truncate(1.5), isModelError(ModelErrorCode.BadArgument));
});

test('cache reuse across turns, prefill, keep and reset', async () => {
  const m = await model(DRAFT);
  const s = m.createSession();
  const turns = [FIXTURE_IDS.slice(0, 7), FIXTURE_IDS.slice(7, 19), FIXTURE_IDS.slice(19)];
  const rows: Float32Array[] = [];
  for (const t of turns) rows.push(...(await s.forward(t)));
  assert.ok(maxAbsDiff(rows, reference.draft) <= PARITY);

  const p = m.createSession();
  const last = await p.prefill(FIXTURE_IDS.slice(0, 16));
  assert.equal(p.length, 16);
  assert.ok(maxAbsDiff([last], [reference.draft[15]]) <= PARITY);
  const kept = await p.forward(FIXTURE_IDS.slice(16, 24), { keep: 3 });
  assert.equal(kept.length, 3);
  assert.ok(maxAbsDiff(kept, reference.draft.slice(21, 24)) <= PARITY);
  assert.deepEqual(await p.forward(FIXTURE_IDS.slice(24, 26), { keep: 0 }), []);
  assert.equal(p.length, 26);
  assert.deepEqual(await p.forward([]), []);
  await assert.rejects(p.forward([1], { keep: 2 }), isModelError(ModelErrorCode.BadArgument, 'keep'));
  await assert.rejects(p.prefill([]), isModelError(ModelErrorCode.BadArgument));

  p.reset();
  assert.equal(p.length, 0);
  const again = await p.forward(FIXTURE_IDS.slice(0, 2));
  assert.ok(maxAbsDiff(again, reference.draft.slice(0, 2)) <= PARITY);
});

test('forwarding past the context throws ContextOverflow and leaves the session usable', async () => {
  const m = await model(DRAFT);
  const s = m.createSession();
  const long = Array.from({ length: 600 }, (_, i) => FIXTURE_IDS[i % FIXTURE_IDS.length]);
  await assert.rejects(s.forward(long), isModelError(ModelErrorCode.ContextOverflow, '600', '512'));
  assert.equal(s.length, 0);
  await s.forward(long.slice(0, 510));
  await assert.rejects(
    s.forward(long.slice(0, 3)),
    isModelError(ModelErrorCode.ContextOverflow, '513', '510'),
  );
  assert.equal(s.length, 510);
  const [end] = await s.forward([long[510], long[511]], { keep: 1 });
  assert.equal(s.length, 512);
  await assert.rejects(s.decodeOne(1), isModelError(ModelErrorCode.ContextOverflow));
  s.truncate(2);
  const row = await s.decodeOne(FIXTURE_IDS[2]);
  assert.ok(maxAbsDiff([row], [reference.draft[2]]) <= PARITY);
  assert.ok(end.every(Number.isFinite));
});

test('bad tokens, overlapping calls and disposal are typed errors', async () => {
  const m = await model(DRAFT);
  const s = m.createSession();
  await s.forward([1, 2]);
  for (const bad of [4096, -1, 1.5, NaN]) {
    await assert.rejects(s.forward([3, bad]), isModelError(ModelErrorCode.BadToken, 'index 1', '4096'));
  }
  assert.equal(s.length, 2);

  const first = s.forward([3]);
  await assert.rejects(s.forward([4]), isModelError(ModelErrorCode.BadArgument, 'in flight'));
  assert.throws(() => s.truncate(0), isModelError(ModelErrorCode.BadArgument, 'in flight'));
  await first;
  assert.deepEqual(s.tokens(), [1, 2, 3]);

  s.dispose();
  s.dispose();
  await assert.rejects(s.forward([1]), isModelError(ModelErrorCode.Disposed));
  assert.throws(() => s.truncate(0), isModelError(ModelErrorCode.Disposed));
});

test('disposing a model disables its sessions', async () => {
  const { loadNodeModel } = await import('../src/node.js');
  const m = await loadNodeModel(DRAFT);
  const s = m.createSession();
  await s.forward([0, 1]);
  await m.dispose();
  await m.dispose();
  await assert.rejects(s.forward([2]), isModelError(ModelErrorCode.Disposed, 'draft'));
  assert.throws(() => m.createSession(), isModelError(ModelErrorCode.Disposed));
});

test('logitsRows: views when trimming, −Infinity padding, float16 decoding', () => {
  const data = Float32Array.from({ length: 2 * 5 }, (_, i) => i);
  const trimmed = logitsRows(data, 0, 2, 5, 4);
  assert.deepEqual(
    trimmed.map((r) => [...r]),
    [
      [0, 1, 2, 3],
      [5, 6, 7, 8],
    ],
  );
  assert.equal(trimmed[1].buffer, data.buffer); // no copy on the hot path
  assert.deepEqual([...logitsRows(data, 1, 1, 5, 7)[0]], [5, 6, 7, 8, 9, -Infinity, -Infinity]);
  // 1, -2, +Inf, 2^-24 (subnormal), 65504 (max), -0.5, 0.333251953125
  const halves = Uint16Array.of(0x3c00, 0xc000, 0x7c00, 0x0001, 0x7bff, 0xb800, 0x3555);
  const [row] = logitsRows(halves, 0, 1, 7, 8);
  assert.deepEqual([...row], [1, -2, Infinity, 2 ** -24, 65504, -0.5, 0.333251953125, -Infinity]);
});
