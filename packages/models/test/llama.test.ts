import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { DRAFT, TINY_LLAMA, maxAbsDiff, model, readRows } from './helpers.js';

// Random-weight Llama-architecture export (models/train/export_tiny_llama.py): RoPE, 4 query / 2 KV heads,
// RMSNorm, SwiGLU, num_logits_to_keep, no position_ids input, 4160 logits rows for the 4096-token tokenizer.
const fixture: { ids: number[]; rows: number } = JSON.parse(
  readFileSync(TINY_LLAMA + '/fixture.json', 'utf8'),
);
const reference = readRows(TINY_LLAMA + '/logits.f32', fixture.rows);

test('tiny llama: layout and config are read from the graph', async () => {
  const m = await model(TINY_LLAMA);
  assert.equal(m.config.modelType, 'llama');
  assert.equal(m.config.vocabSize, 4096);
  assert.equal(m.config.logitsRows, 4160);
  assert.equal(m.config.numLayers, 2);
  assert.equal(m.config.numKvHeads, 2); // grouped-query: the cache has 2 heads, attention has 4
  assert.equal(m.config.headDim, 8);
  assert.equal(m.config.maxContext, 128);
  assert.equal(m.layout.positionIds, null);
  assert.equal(m.layout.numLogitsToKeep, 'num_logits_to_keep');
  assert.equal(m.layout.numLogitsToKeepScalar, true);
  assert.equal(m.tokenizerHash, (await model(DRAFT)).tokenizerHash);
});

test('tiny llama: padded rows are trimmed and logits match PyTorch', async () => {
  const s = (await model(TINY_LLAMA)).createSession();
  const rows = await s.forward(fixture.ids);
  assert.equal(rows.length, fixture.ids.length);
  assert.ok(rows.every((r) => r.length === 4096));
  const diff = maxAbsDiff(rows, reference);
  assert.ok(diff <= 2e-3, `max |ORT - PyTorch| = ${diff}`);
});

test('tiny llama: incremental, k-token, prefill (num_logits_to_keep) and truncate agree', async () => {
  const m = await model(TINY_LLAMA);
  const s = m.createSession();
  const inc: Float32Array[] = [];
  for (const id of fixture.ids) inc.push(Float32Array.from(await s.decodeOne(id)));
  assert.ok(maxAbsDiff(inc, reference) <= 2e-3);

  const p = m.createSession();
  const last = await p.prefill(fixture.ids.slice(0, 9)); // keep = 1: the graph runs the LM head once
  assert.ok(maxAbsDiff([last], [reference[8]]) <= 2e-3);
  const block = await p.forward(fixture.ids.slice(9));
  assert.ok(maxAbsDiff(block, inc.slice(9)) <= 1e-4);

  p.truncate(5);
  const again = await p.forward(fixture.ids.slice(5, 12), { keep: 2 });
  assert.ok(maxAbsDiff(again, reference.slice(10, 12)) <= 2e-3);
});
