import test from 'node:test';
import assert from 'node:assert/strict';
import { BATCH_COST_PRESETS, BatchScheduler, batchCostMs, type BatchBackend } from '../src/index.js';
import { HashLm } from '../src/testing/index.js';

/** A backend that runs each item on its own HashLm and records the pass sizes. */
function backend(delayMs = 0) {
  const passes: number[] = [];
  const b: BatchBackend<HashLm> = {
    async run(items) {
      passes.push(items.length);
      if (items.some((it) => it.tokens.includes(-1))) throw new Error('bad token');
      await new Promise((r) => setTimeout(r, delayMs));
      return Promise.all(items.map((it) => it.session.forward([...it.tokens])));
    },
  };
  return { b, passes };
}

test('scheduler: requests that wait while a pass runs go into the next pass together, each gets its own rows', async () => {
  const { b, passes } = backend(20);
  const sched = new BatchScheduler(b);
  const lms = Array.from({ length: 5 }, (_, i) => new HashLm(64, i + 1));
  const wrapped = lms.map((l) => sched.wrap(l));
  const first = wrapped[0].forward([1, 2]);
  await new Promise((r) => setTimeout(r, 5)); // the first pass is running
  const rest = await Promise.all(wrapped.slice(1).map((w, i) => w.forward([3, i])));
  await first;
  assert.deepEqual(passes, [1, 4]);
  rest.forEach((rows, i) => {
    const ref = new HashLm(64, i + 2);
    assert.deepEqual(rows[1], ref.logits([3, i]), 'rows belong to their own session');
    assert.equal(wrapped[i + 1].length, 2);
  });
});

test('scheduler: token budget splits passes, a long prefill runs alone, a bad request fails only itself', async () => {
  const { b, passes } = backend();
  const sched = new BatchScheduler(b, { tokenBudget: 8, soloAbove: 4 });
  const lms = Array.from({ length: 4 }, (_, i) => sched.wrap(new HashLm(32, i + 1)));
  const prefill = sched.wrap(new HashLm(32, 9));
  const bad = sched.wrap(new HashLm(32, 10));
  const all = [
    ...lms.map((l) => l.forward([1, 2, 3])),
    prefill.forward([1, 2, 3, 4, 5, 6]),
    bad.forward([-1]),
  ];
  const r = await Promise.allSettled(all);
  assert.deepEqual(
    r.map((x) => x.status),
    ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected'],
  );
  // 2 rows × 3 tokens fit 8; the prefill alone; the bad one fails its pass with a partner, then alone.
  assert.ok(
    passes.every((n) => n * 3 <= 8 || n === 1),
    `passes ${passes}`,
  );
  assert.ok(passes.includes(1));
});

test('emulated batch cost: interpolates the H200 table and counts overruns', async () => {
  const t = BATCH_COST_PRESETS['h200-7b'];
  assert.equal(batchCostMs(t, 1, 1), 6.0);
  assert.equal(batchCostMs(t, 64, 64 * 5), 19.1);
  assert.ok(
    Math.abs(
      batchCostMs(t, 32, 32 * 4) - (8.7 + (16 / 48) * (19.1 - 8.7) + 8.6 + (16 / 48) * (14.8 - 8.6)) / 2,
    ) < 1e-9,
  );
  assert.equal(batchCostMs(t, 16, 16), 6.8); // a 1-token step (edge-only) uses the k = 1 column
  const { b } = backend(30);
  const sched = new BatchScheduler(b, { cost: t });
  const w = sched.wrap(new HashLm(16, 1));
  const t0 = performance.now();
  await w.forward([1]);
  assert.ok(performance.now() - t0 >= 25);
  assert.equal(sched.stats.overruns, 1, 'a 30 ms pass exceeds the emulated 6 ms');
});
