import test from 'node:test';
import assert from 'node:assert/strict';
import { ModelError, ModelErrorCode, floatToHalf } from '../src/index.js';
import type { KvSlab, SlabSession } from '../src/index.js';
import { TARGET, maxAbsDiff, model } from './helpers.js';
import { QWEN_STANDIN_DIRS, qwenStandinMissing } from '../src/node.js';

const SAME = 1e-4; // batched vs single pass: masking and padding reorder sums, nothing else

const ids = (seed: number, n: number) =>
  Array.from({ length: n }, (_, j) => (seed * 131 + j * 17 + 3) % 4000);
const copy = (rows: Float32Array[]) => rows.map((r) => Float32Array.from(r));

test('batched pass over sessions of different histories equals single passes (≤ 1e-4), across truncations', async () => {
  const m = await model(TARGET);
  const slab = await m.createSlab(6);
  const hist = [50, 7, 400, 131, 505];
  const singles = hist.map(() => m.createSession());
  const rows = hist.map(() => slab.acquire());
  for (let i = 0; i < hist.length; i++) {
    await singles[i].forward(ids(i, hist[i]), { keep: 1 });
    await rows[i].forward(ids(i, hist[i]));
  }
  for (let round = 0; round < 3; round++) {
    const items = rows.map((session, i) => ({
      session,
      tokens: ids(i + 11 * round, Math.min(1 + ((i + round) % 5), 512 - session.length)),
    }));
    const got = (await slab.run(items)).map(copy);
    for (let i = 0; i < hist.length; i++) {
      const want = await singles[i].forward(items[i].tokens);
      const d = maxAbsDiff(want, got[i]);
      assert.ok(d <= SAME, `session ${i} (history ${hist[i]}), round ${round}: max |Δlogit| ${d}`);
      // A rejection: both drop the last new token; the slab keeps the data, the mask stops covering it.
      singles[i].truncate(singles[i].length - 1);
      rows[i].truncate(rows[i].length - 1);
    }
  }
  // A pass over a few short rows far apart gathers their used prefixes instead of viewing the slab.
  const some = [1, 3];
  const rows0 = slab.stats.rows;
  const got = (await slab.run(some.map((i) => ({ session: rows[i], tokens: ids(40 + i, 4) })))).map(copy);
  for (const [x, i] of some.entries()) {
    const d = maxAbsDiff(await singles[i].forward(ids(40 + i, 4)), got[x]);
    assert.ok(d <= SAME, `gathered pass, session ${i}: max |Δlogit| ${d}`);
  }
  assert.equal(slab.stats.rows - rows0, 2, 'the pass carried only its own two rows, not the one between');
  for (const s of [...singles, ...rows]) s.dispose();
});

test('leakage: a row is bit-identical across two batches of the same shape whose other rows differ (both layouts)', async () => {
  const m = await model(TARGET);
  // first = 90: the pass gathers used prefixes; first = 500: it views the slab rows as they are.
  const run = async (slab: KvSlab, first: number, other: number) => {
    const rows: SlabSession[] = [slab.acquire(), slab.acquire(), slab.acquire()];
    await rows[0].forward(ids(other, first));
    await rows[1].forward(ids(5, 60));
    await rows[2].forward(ids(other + 1, 30 + other));
    const out = await slab.run([
      { session: rows[0], tokens: ids(other + 2, 4) },
      { session: rows[1], tokens: ids(9, 4) },
      { session: rows[2], tokens: ids(other + 3, 2) },
    ]);
    const mine = copy(out[1]);
    for (const r of rows) r.dispose();
    return mine;
  };
  const slab = await m.createSlab(3);
  for (const first of [90, 500]) {
    const a = await run(slab, first, 1);
    const b = await run(slab, first, 2);
    for (let r = 0; r < a.length; r++)
      assert.deepEqual(a[r], b[r], `history ${first}: row ${r} changed with its neighbours`);
  }
});

test('slab refusals are typed: full slab, foreign session, overflow, and a graph with position-derived causality', async () => {
  const m = await model(TARGET);
  const slab = await m.createSlab(1);
  const s = slab.acquire();
  assert.throws(
    () => slab.acquire(),
    (e) => e instanceof ModelError && e.code === ModelErrorCode.BadArgument,
  );
  await assert.rejects(
    s.forward(ids(1, 513)),
    (e) => e instanceof ModelError && e.code === ModelErrorCode.ContextOverflow,
  );
  assert.equal(s.length, 0);
  s.dispose();
  const other = await m.createSlab(1);
  await assert.rejects(
    slab.run([{ session: other.acquire(), tokens: [1] }]),
    (e) => e instanceof ModelError && e.code === ModelErrorCode.Disposed,
  );
  const missing = qwenStandinMissing();
  if (missing) return;
  const q = await model(QWEN_STANDIN_DIRS.target);
  await assert.rejects(
    q.createSlab(2),
    (e) => e instanceof ModelError && e.code === ModelErrorCode.BadLayout,
  );
});

test('floatToHalf rounds to nearest even like a cast', () => {
  assert.equal(floatToHalf(1), 0x3c00);
  assert.equal(floatToHalf(-2), 0xc000);
  assert.equal(floatToHalf(65504), 0x7bff);
  assert.equal(floatToHalf(65520), 0x7c00); // rounds up to infinity
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  assert.equal(floatToHalf(2 ** -24), 0x0001);
  assert.equal(floatToHalf(2 ** -26), 0);
});
