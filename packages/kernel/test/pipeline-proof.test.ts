/**
 * Exact proof that pipelined drafting is lossless as the edge runs it: the law of the first N emitted tokens of
 * the pipelined schedule, enumerated by driving the real PipelineVerifier (edge) and resampleRejected (device)
 * (pipeline-enum.ts), equals the target's sequential law to 1e-12. Planted bugs (a timing-chosen bonus, a reused
 * block number, a stale block that is verified) are subclasses of PipelineVerifier here and must move the law by
 * more than 1e-3. Unit tests pin PipelineVerifier's contract.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { KernelError, KernelErrorCode, PipelineVerifier, RoundRng, sampleBonus } from '../src/index.js';
import type { PipelineBlock, PipelineResult, Rows } from '../src/index.js';
import { families, maxAbsDiff, targetLaw } from './helpers.js';
import type { ToyPair } from './helpers.js';
import { pipelineLaw } from './pipeline-enum.js';
import type { Schedule, Variant } from './pipeline-enum.js';
import { enumStats } from './round-enum.js';

const TOL = 1e-12;
const CAUGHT = 1e-3;

// ---------------------------------------------------------------------------------------------------------------
// Planted bugs: edge verifiers that break one invariant each.
// ---------------------------------------------------------------------------------------------------------------

/**
 * (a) Timing-chosen bonus: a fully accepted block gets a bonus from the next row when nothing else has been
 * delivered yet. The bonus then travels like a resampled token (the next block carries it; blocks drafted past
 * it are stale), so the only defect is *when* a bonus is taken.
 */
class IdleBonusVerifier extends PipelineVerifier {
  /** Set by the harness before each call: no later block has been delivered. */
  idle = false;
  private bonusOut = false;

  override verify(b: PipelineBlock, target: Rows, rng: (index: number) => RoundRng): PipelineResult {
    if (this.bonusOut && !b.carriesResample) return { stale: true };
    const r = super.verify(this.bonusOut ? { ...b, carriesResample: false } : b, target, rng);
    if (r.stale) return r;
    this.bonusOut = false;
    if (r.rejectedAt !== null || !this.idle) return r;
    this.bonusOut = true;
    const g = b.drafts.length;
    return { ...r, bonus: sampleBonus(target(g + 1), rng(b.index).bonus(g)) };
  }
}

/** (b) Reused block number: the block carrying the resampled token may repeat the rejected block's number. */
class ReusedIndexVerifier extends PipelineVerifier {
  override isStale(b: Pick<PipelineBlock, 'index' | 'carriesResample'>): boolean {
    return super.isStale(b.carriesResample ? { ...b, index: b.index + 1 } : b);
  }
}

/** (c) Stale blocks verified: the missing resample marker is ignored (blocks drafted past a rejection count). */
class StaleVerifyingVerifier extends PipelineVerifier {
  private rejected = false;

  override verify(b: PipelineBlock, target: Rows, rng: (index: number) => RoundRng): PipelineResult {
    const r = super.verify({ ...b, carriesResample: this.rejected }, target, rng);
    if (!r.stale) this.rejected = r.rejectedAt !== null;
    return r;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Configurations.
// ---------------------------------------------------------------------------------------------------------------

interface Config {
  what: string;
  V: number;
  N: number;
  sch: Schedule;
}

/**
 * Block sizes 1..3, windows of one to three blocks, latencies giving 0, 1 and 2 further sends, EOS-like short
 * blocks. Sized to the enumeration: each tick multiplies the states by up to |V| drafts.
 */
const CONFIGS: Config[] = [
  { what: 'g=2 W=6 (three blocks), lat 4/0/2', V: 2, N: 5, sch: { g: 2, W: 6, lat: [4, 0, 2] } },
  { what: 'g=1 W=3, lat 2/0/1', V: 3, N: 4, sch: { g: 1, W: 3, lat: [2, 0, 1] } },
  { what: 'g=3 W=6, lat 3/0', V: 3, N: 4, sch: { g: 3, W: 6, lat: [3, 0] } },
  { what: 'g=2 W=4, lat 1, EOS-like short blocks', V: 3, N: 4, sch: { g: 2, W: 4, lat: [1, 2], eos: 0 } },
  { what: 'g=1 W=1 (serial), lat 1', V: 4, N: 3, sch: { g: 1, W: 1, lat: [1] } },
];

const EXACT: Variant = { verifier: () => new PipelineVerifier(), exact: true };

function diffFor(model: ToyPair, N: number, sch: Schedule, v: Variant): number {
  return maxAbsDiff(pipelineLaw(model, N, sch, v).law, targetLaw(model, N));
}

test('pipelined schedule: exact law of the first N tokens equals the target law', () => {
  const t0 = performance.now();
  const runs0 = enumStats.runs;
  let worst = { diff: 0, where: '' };
  const further = new Set<number>();
  let stale = 0;
  let second = false;
  let rejections = 0;
  const report: string[] = [];
  for (const c of CONFIGS) {
    let cfgWorst = 0;
    let states = 0;
    for (const model of families(c.V, 7 + c.V)) {
      const { law, cover } = pipelineLaw(model, c.N, c.sch, EXACT);
      let mass = 0;
      for (const m of law.values()) mass += m;
      assert.ok(Math.abs(mass - 1) <= TOL, `${c.what} ${model.name}: total mass ${mass}`);
      const diff = maxAbsDiff(law, targetLaw(model, c.N));
      cfgWorst = Math.max(cfgWorst, diff);
      if (diff >= worst.diff) worst = { diff, where: `${model.name} V=${c.V} N=${c.N} ${c.what}` };
      for (const f of cover.further) further.add(f);
      stale += cover.stale;
      second ||= cover.secondBlockRejection;
      rejections = Math.max(rejections, cover.maxRejections);
      states += cover.states;
    }
    report.push(`${c.what} V=${c.V} N=${c.N}: max |Δ| ${cfgWorst.toExponential(2)}, ${states} states`);
  }
  const ms = Math.round(performance.now() - t0);
  console.log(
    `${report.join('\n')}\nall: max |Δ| ${worst.diff} (${worst.where}); ${enumStats.runs - runs0} runs, ${ms} ms`,
  );
  assert.ok(worst.diff <= TOL, `max |Δ| = ${worst.diff} at ${worst.where}`);
  // The schedule really was pipelined: what the paths went through.
  for (const f of [0, 1, 2]) assert.ok(further.has(f), `no verdict after ${f} further sends`);
  assert.ok(stale > 0, 'no stale block reached the verifier');
  assert.ok(second, 'no rejection inside the second block');
  assert.ok(rejections >= 2, `at most ${rejections} rejections on a path`);
});

// ---------------------------------------------------------------------------------------------------------------
// Planted bugs.
// ---------------------------------------------------------------------------------------------------------------

/** Two families with mass on every token suffice; the rest only add time (heavy-tail hides bug a's effect). */
const BUG_FAMILIES = ['random', 'correlated'];

function worstOver(V: number, N: number, sch: Schedule, v: Variant): number {
  let worst = 0;
  for (const model of families(V, 7 + V).filter((m) => BUG_FAMILIES.includes(m.name))) {
    worst = Math.max(worst, diffFor(model, N, sch, v));
  }
  return worst;
}

test('planted bug (a): a bonus taken because nothing else has arrived yet is caught', () => {
  const bug: Variant = { verifier: () => new IdleBonusVerifier() };
  // Short blocks after an EOS-like token arrive sooner, so whether the next block is there when block b is
  // verified depends on the next block's first draft: the bonus at that position is chosen by its content.
  const eos = worstOver(3, 4, { g: 2, W: 4, lat: [1], eos: 0 }, bug);
  assert.ok(eos > CAUGHT, `timing-chosen bonus undetected (max |Δ| = ${eos})`);
  // Control: when arrival times do not depend on the drafts, "bonus iff idle" is a stopping rule fixed before
  // the bonus position is drafted, i.e. ordinary speculative decoding, and stays exact: the harness computes
  // what the code does, not merely that it changed.
  const plain = worstOver(3, 4, { g: 2, W: 4, lat: [1, 2] }, bug);
  assert.ok(plain <= TOL, `bonus on content-independent timing: max |Δ| = ${plain}`);
  console.log(`bug (a): max |Δ| ${eos} with EOS-like short blocks; ${plain} without`);
});

test('planted bug (b): a block number reused after a rejection is caught', () => {
  const sch: Schedule = { g: 2, W: 4, lat: [2] };
  const bug: Variant = { verifier: () => new ReusedIndexVerifier(), reuseIndex: true, conditioned: true };
  const diff = worstOver(3, 4, sch, bug);
  assert.ok(diff > CAUGHT, `reused block number undetected (max |Δ| = ${diff})`);
  const [model] = families(3, 10);
  // Without the intervals, the harness refuses the reused uniform outright.
  assert.throws(() => pipelineLaw(model, 4, sch, { ...bug, conditioned: false }), /reused/);
  // The real verifier drops the reused number as stale, so the device would wait forever: no law at all.
  assert.throws(
    () => pipelineLaw(model, 4, sch, { ...EXACT, reuseIndex: true, exact: false }),
    /no progress/,
  );
  console.log(`bug (b): max |Δ| ${diff}`);
});

test('planted bug (c): a stale block that is verified is caught', () => {
  // |V| = 2: once the edge's prefix departs from the device's, states stop merging.
  const diff = worstOver(2, 4, { g: 2, W: 4, lat: [2] }, { verifier: () => new StaleVerifyingVerifier() });
  assert.ok(diff > CAUGHT, `verified stale block undetected (max |Δ| = ${diff})`);
  console.log(`bug (c): max |Δ| ${diff}`);
});

// ---------------------------------------------------------------------------------------------------------------
// PipelineVerifier's contract.
// ---------------------------------------------------------------------------------------------------------------

/** P puts all mass on token 0: a draft 0 is always accepted, a draft 1 always rejected (any uniform). */
const ROW = Float32Array.from([1, 0]);

function harness() {
  const v = new PipelineVerifier();
  const used: number[] = [];
  const rows: number[] = [];
  const rng = (i: number) => {
    used.push(i);
    return new RoundRng(5, 0, i);
  };
  const target: Rows = (i) => {
    rows.push(i);
    return ROW;
  };
  const block = (index: number, drafts: number[], carriesResample = false): PipelineBlock => ({
    index,
    carriesResample,
    drafts,
    q: drafts.map(() => 0.5),
  });
  const verify = (b: PipelineBlock) => v.verify(b, target, rng);
  return { v, used, rows, block, verify };
}

test('PipelineVerifier: a fully accepted block never gets a bonus, and its next row is never read', () => {
  const h = harness();
  const r = h.verify(h.block(0, [0, 0, 0]));
  assert.deepEqual(r, { stale: false, accepted: 3, rejectedAt: null, bonus: null, rejectedRow: null });
  assert.deepEqual(h.rows, [1, 2, 3]);
  // The next block continues from the last draft: no marker needed.
  assert.equal(h.verify(h.block(1, [0])).stale, false);
});

test('PipelineVerifier: stale by number (duplicates and older blocks), with no uniform consumed', () => {
  const h = harness();
  h.verify(h.block(3, [0]));
  const before = h.used.length;
  assert.deepEqual(h.verify(h.block(3, [0])), { stale: true });
  assert.deepEqual(h.verify(h.block(1, [0])), { stale: true });
  // An old block stays stale even if it carries a marker (a resent carrier of an earlier rejection).
  assert.deepEqual(h.verify(h.block(2, [0], true)), { stale: true });
  assert.equal(h.used.length, before);
  assert.equal(h.verify(h.block(7, [0])).stale, false, 'numbers may skip');
});

test('PipelineVerifier: after a rejection, blocks without the resample marker are stale until the carrier', () => {
  const h = harness();
  const r = h.verify(h.block(0, [0, 1, 0]));
  assert.equal(r.stale, false);
  if (!r.stale) {
    assert.equal(r.rejectedAt, 2);
    assert.equal(r.rejectedRow, ROW);
  }
  assert.deepEqual(h.rows, [1, 2], 'rows past the rejection are never read');
  const before = h.used.length;
  // Blocks 1 and 2 were drafted on top of the rejected token.
  assert.deepEqual(h.verify(h.block(1, [0])), { stale: true });
  assert.deepEqual(h.verify(h.block(2, [0, 0])), { stale: true });
  assert.equal(h.used.length, before, 'stale blocks consume no uniforms');
  assert.ok(h.v.isStale({ index: 3, carriesResample: false }));
  assert.ok(!h.v.isStale({ index: 3, carriesResample: true }));
  assert.equal(h.verify(h.block(3, [0], true)).stale, false);
  // Once the carrier is in, unmarked blocks continue normally.
  assert.equal(h.verify(h.block(4, [0])).stale, false);
});

test('PipelineVerifier: a marker nobody asked for is a protocol violation', () => {
  const h = harness();
  const isInvalid = (e: unknown) => e instanceof KernelError && e.code === KernelErrorCode.InvalidArgument;
  assert.throws(() => h.verify(h.block(0, [0], true)), isInvalid);
  h.verify(h.block(0, [0]));
  assert.throws(() => h.verify(h.block(1, [0], true)), isInvalid);
  assert.deepEqual(h.used, [0], 'nothing is verified by a rejected call');
  assert.throws(() => h.verify(h.block(1.5, [0])), isInvalid);
});

test('PipelineVerifier: reset ends the wait for a carrier but keeps old numbers stale', () => {
  const h = harness();
  h.verify(h.block(4, [1]));
  assert.ok(h.v.isStale({ index: 5, carriesResample: false }));
  h.v.reset(4);
  assert.ok(!h.v.isStale({ index: 5, carriesResample: false }));
  // A turn frame numbered 7 makes every block numbered up to it stale (it belongs to an earlier turn).
  const later = harness();
  later.verify(later.block(4, [1]));
  later.v.reset(7);
  assert.ok(later.v.isStale({ index: 6, carriesResample: false }));
  assert.ok(!later.v.isStale({ index: 8, carriesResample: false }));
  assert.ok(h.v.isStale({ index: 4, carriesResample: false }), 'block numbers are session-wide');
  assert.throws(() => h.verify(h.block(5, [0], true)), KernelError);
  assert.equal(h.verify(h.block(5, [0])).stale, false);
});
