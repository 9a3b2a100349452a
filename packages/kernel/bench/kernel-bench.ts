// Kernel benchmark at |V| = 151,936: `npm run bench:kernel` (root), or `npx tsc -b packages/kernel && npm run bench
// -w @dssd/kernel`. Options: --positions N (positions per noise scenario, default 300), --timed N (timed
// positions per cell, default 20), --replicas N (acceptance tests per position, default 8), --seed S, --out DIR,
// --rtt-penalty-bytes B (what the K chooser charges a fall-back's extra round trip, default 125000).
//
// Synthetic pairs: target logits Zipf-like, −a·ln(rank), over a fresh random rank→id permutation per position;
// draft = target + σ·N(0, 1) per token. Scenarios: σ 0.4, 0.7, 1.0 (a = 2) and a heterogeneous stream (σ
// log-uniform on [0.05, 1.5], a uniform on [1, 3] per position), each with no truncation, top-k 50 and top-p
// 0.9 at temperature 1. Per cell: α = E[1 − TV]; processLogits ms (median/p90) of the original implementation
// (test/reference-sampling.ts) and of the current one, on the same logits, interleaved; sampling ms (draft draw,
// candidate draw + resolve, residual) timed separately; the rejection downlink with K from CandidateCountChooser
// (fed the device's trial reports, as the protocol would) and fall-backs sending P_j in its smallest exact
// encoding, byte counts from @dssd/codec's encoders; the same with today's K = 32 and dense f32 fall-back for
// comparison (expected values, from the exact (1 − TV)^K); DSD's uplink per round for comparison.
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  HEADER_SIZE,
  dsdDraftFrameSize,
  draftFrameSize,
  encodeCandidates,
  encodedSize,
  verdictFrameSize,
} from '@dssd/codec';
import {
  CandidateCountChooser,
  candidatesBodyBytes,
  drawCandidates,
  processLogits,
  resolveCandidates,
  sampleFrom,
  sampleResidual,
  totalVariation,
} from '../src/index.js';
import type { SamplingParams } from '../src/index.js';
import { referenceProcessLogits } from '../test/reference-sampling.js';

const arg = (name: string, dflt: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const argStr = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const V = 151_936;
const POSITIONS = arg('positions', 300);
const TIMED = arg('timed', 20);
const REPLICAS = arg('replicas', 8);
const SEED = arg('seed', 20261129);
const GAMMA = 4;
// A fall-back also costs a round trip; the chooser prices it in bytes: 20 ms at 50 Mbit/s by default.
const RTT_PENALTY = arg('rtt-penalty-bytes', 125_000);
/** node --expose-gc provides it (the package's bench script passes the flag). */
const gc = (globalThis as { gc?: () => void }).gc;
const DATE = new Date().toISOString().slice(0, 10);
const OUT_DIR = argStr('out', fileURLToPath(new URL('../../../../bench/results/', import.meta.url)));

// ---------------------------------------------------------------------------------------------------------------
// Seeded generator: xoshiro128** (bench-only; the kernel's own randomness is Philox).
// ---------------------------------------------------------------------------------------------------------------
function xoshiro128(seed: number): () => number {
  let s0 = (seed ^ 0x9e3779b9) >>> 0;
  let s1 = Math.imul(seed, 0x85ebca6b) >>> 0 || 1;
  let s2 = 0x6a09e667;
  let s3 = 0xbb67ae85;
  const next = (): number => {
    const r = Math.imul(((Math.imul(s1, 5) << 7) | (Math.imul(s1, 5) >>> 25)) >>> 0, 9) >>> 0;
    const t = (s1 << 9) >>> 0;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = ((s3 << 11) | (s3 >>> 21)) >>> 0;
    return r;
  };
  for (let k = 0; k < 16; k++) next();
  return () => (next() * 2097152 + (next() >>> 11)) / 9007199254740992; // 53 bits
}

/** Fills `out` with standard normals (Box–Muller, two per pair of uniforms). */
function gaussians(out: Float64Array, rand: () => number): void {
  for (let i = 0; i < out.length; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rand()));
    const th = 2 * Math.PI * rand();
    out[i] = r * Math.cos(th);
    if (i + 1 < out.length) out[i + 1] = r * Math.sin(th);
  }
}

const LN_RANK = Float64Array.from({ length: V }, (_, r) => Math.log(r + 1));
const perm = Int32Array.from({ length: V }, (_, i) => i);
const noise = new Float64Array(V);

interface Scenario {
  name: string;
  /** Noise σ and Zipf exponent a of one position. */
  draw: (rand: () => number) => { sigma: number; a: number };
}
const SCENARIOS: Scenario[] = [
  { name: 'σ 0.4', draw: () => ({ sigma: 0.4, a: 2 }) },
  { name: 'σ 0.7', draw: () => ({ sigma: 0.7, a: 2 }) },
  { name: 'σ 1.0', draw: () => ({ sigma: 1.0, a: 2 }) },
  {
    name: 'heterogeneous',
    draw: (rand) => ({ sigma: 0.05 * 30 ** rand(), a: 1 + 2 * rand() }),
  },
];
const TRUNCATIONS: Array<{ name: string; params: SamplingParams }> = [
  { name: 'none', params: { temperature: 1, topK: 0, topP: 1 } },
  { name: 'top-k 50', params: { temperature: 1, topK: 50, topP: 1 } },
  { name: 'top-p 0.9', params: { temperature: 1, topK: 0, topP: 0.9 } },
];

/** One position's target and draft logits (Float32Array, as a model runtime hands them over). */
function makePosition(rand: () => number, sigma: number, a: number) {
  for (let i = V - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
  const target = new Float32Array(V);
  for (let r = 0; r < V; r++) target[perm[r]] = -a * LN_RANK[r];
  gaussians(noise, rand);
  const draft = new Float32Array(V);
  for (let i = 0; i < V; i++) draft[i] = target[i] + sigma * noise[i];
  return { target, draft };
}

// ---------------------------------------------------------------------------------------------------------------
// Statistics of one cell (scenario × truncation).
// ---------------------------------------------------------------------------------------------------------------
class Cell {
  positions = 0;
  acceptSum = 0; // Σ (1 − TV)
  // Today's scheme, expected over every position weighted by its rejection probability TV.
  rejWeight = 0;
  fb32Weighted = 0; // Σ TV·(1 − TV)^32
  bytes32Weighted = 0; // Σ TV·(candidates(32) + (1 − TV)^32 · dense f32 response)
  // Adaptive scheme, realised rejections.
  rejections = 0;
  direct = 0;
  fallbacks = 0;
  expectedFallbacks = 0; // Σ (1 − TV)^K at candidate rejections
  bytes = 0;
  expectedBytes = 0;
  ks: number[] = [];
  oldMs: number[] = [];
  newMs: number[] = [];
  oldCpuMs: number[] = [];
  newCpuMs: number[] = [];
  draftDrawMs: number[] = [];
  candidatesMs: number[] = [];
  residualMs: number[] = [];
  mismatches = 0;
  readonly chooser = new CandidateCountChooser({ vocabSize: V });
}

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const d = process.cpuUsage(since);
  return (d.user + d.system) / 1000;
};
const quantile = (xs: number[], q: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const sameBits = (a: Float32Array, b: Float32Array): boolean => {
  const ua = new Uint32Array(a.buffer);
  const ub = new Uint32Array(b.buffer);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
};
// Outputs stay referenced for a while, as the device keeps Q_1..Q_γ until the verdict (a freshly allocated
// array dropped at once makes V8 return and re-fault its pages on every call, which is not how callers use it).
const held: Float32Array[] = [];
const hold = (q: Float32Array): Float32Array => {
  held.push(q);
  if (held.length > 2 * (GAMMA + 1)) held.shift();
  return q;
};

const candidateFrame = (K: number): number => verdictFrameSize('reject', candidatesBodyBytes(K, V));

function runCell(
  cell: Cell,
  target: Float32Array,
  draft: Float32Array,
  params: SamplingParams,
  rand: () => number,
) {
  // Timed positions are spread over the stream (not its first ones, where the JIT and the adaptive thresholds
  // are still settling), and each timed pair starts after a full GC when node runs with --expose-gc, so neither
  // implementation pays for the other's garbage.
  const stride = Math.max(1, Math.floor(POSITIONS / TIMED));
  const timed = (cell.positions + 1) % stride === 0 && cell.newMs.length < TIMED;
  let P: Float32Array;
  if (timed) {
    gc?.();
    // Interleaved old/new on the same logits; wall time and this process's CPU time (the cores are shared).
    let c0 = process.cpuUsage();
    let t0 = performance.now();
    const ref = hold(referenceProcessLogits(target, params));
    cell.oldMs.push(performance.now() - t0);
    cell.oldCpuMs.push(cpuMs(c0));
    c0 = process.cpuUsage();
    t0 = performance.now();
    P = hold(processLogits(target, params));
    cell.newMs.push(performance.now() - t0);
    cell.newCpuMs.push(cpuMs(c0));
    if (!sameBits(P, ref)) cell.mismatches++;
  } else P = hold(processLogits(target, params));
  const Q = hold(processLogits(draft, params));
  cell.positions++;
  const tv = Math.min(1, totalVariation(P, Q));
  cell.acceptSum += 1 - tv;
  const autoBody = encodedSize(P, 'auto');
  cell.rejWeight += tv;
  cell.fb32Weighted += tv * (1 - tv) ** 32;
  // The old scheme: K = 32 and a dense float32 fall-back (frame header, j, f32 tag, 4 bytes per entry).
  cell.bytes32Weighted += tv * (candidateFrame(32) + (1 - tv) ** 32 * (HEADER_SIZE + 2 + 4 * V));

  let t0 = performance.now();
  sampleFrom(Q, rand());
  if (timed) cell.draftDrawMs.push(performance.now() - t0);
  // The replicas' draft tokens from one CDF (drawCandidates returns what sampleFrom would for each uniform).
  const drafts = drawCandidates(
    Q,
    REPLICAS,
    Float64Array.from({ length: REPLICAS }, () => rand()),
  ).ids;
  for (let rep = 0; rep < REPLICAS; rep++) {
    const x = drafts[rep];
    if (rand() * Q[x] < P[x]) continue; // accepted
    cell.rejections++;
    // A fall-back costs the response frame with P_j in its smallest exact encoding, and a round trip.
    const fallbackCost = HEADER_SIZE + 1 + autoBody;
    const plan = cell.chooser.plan(fallbackCost + RTT_PENALTY, autoBody);
    if (plan.mode === 'direct') {
      cell.direct++;
      const b = verdictFrameSize('reject', autoBody);
      cell.bytes += b;
      cell.expectedBytes += b;
      continue;
    }
    const K = plan.K;
    cell.ks.push(K);
    const u = Float64Array.from({ length: K }, () => rand());
    const v = Float64Array.from({ length: K }, () => rand());
    t0 = performance.now();
    const c = drawCandidates(P, K, u);
    const res = resolveCandidates(c.ids, c.probs, Q, v);
    if (timed && rep === 0) cell.candidatesMs.push(performance.now() - t0);
    const body = verdictFrameSize('reject', encodeCandidates(c, V).length);
    cell.bytes += body;
    cell.expectedBytes += body + (1 - tv) ** K * fallbackCost;
    cell.expectedFallbacks += (1 - tv) ** K;
    if (res.fallback) {
      cell.fallbacks++;
      cell.bytes += fallbackCost;
      cell.chooser.fellBack(K);
      t0 = performance.now();
      sampleResidual(P, Q, rand());
      if (timed) cell.residualMs.push(performance.now() - t0);
    } else cell.chooser.succeeded(res.index + 1, K);
  }
  if (timed && cell.residualMs.length < cell.positions) {
    // The residual is rare in the loop above; time it on every timed position too.
    const t0 = performance.now();
    sampleResidual(P, Q, rand());
    cell.residualMs.push(performance.now() - t0);
  }
}

// ---------------------------------------------------------------------------------------------------------------

const f = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '–');
const results: Array<Record<string, unknown>> = [];
const started = performance.now();
console.log(
  `kernel bench |V| = ${V}, ${POSITIONS} positions × ${REPLICAS} acceptance tests per scenario, ` +
    `${TIMED} timed positions per cell, seed ${SEED}`,
);
// Warm-up: let the JIT optimise both implementations before anything is timed.
{
  const rand = xoshiro128(SEED - 1);
  for (let k = 0; k < 24; k++) {
    const { target } = makePosition(rand, 0.5, 1 + (k % 3));
    for (const t of TRUNCATIONS) {
      hold(processLogits(target, t.params));
      hold(referenceProcessLogits(target, t.params));
    }
  }
}
for (const [si, scenario] of SCENARIOS.entries()) {
  const rand = xoshiro128(SEED + 1000 * si);
  const cells = TRUNCATIONS.map(() => new Cell());
  for (let pos = 0; pos < POSITIONS; pos++) {
    const { sigma, a } = scenario.draw(rand);
    const { target, draft } = makePosition(rand, sigma, a);
    for (const [ti, t] of TRUNCATIONS.entries()) runCell(cells[ti], target, draft, t.params, rand);
    if ((pos + 1) % 100 === 0 || pos + 1 === POSITIONS) {
      const s = ((performance.now() - started) / 1000).toFixed(0);
      console.log(`  ${scenario.name}: ${pos + 1}/${POSITIONS} positions (${s} s)`);
    }
  }
  for (const [ti, t] of TRUNCATIONS.entries()) {
    const c = cells[ti];
    const candRej = c.rejections - c.direct;
    const row = {
      scenario: scenario.name,
      truncation: t.name,
      positions: c.positions,
      alpha: c.acceptSum / c.positions,
      processOldMs: { median: quantile(c.oldMs, 0.5), p90: quantile(c.oldMs, 0.9) },
      processNewMs: { median: quantile(c.newMs, 0.5), p90: quantile(c.newMs, 0.9) },
      processOldCpuMs: { median: quantile(c.oldCpuMs, 0.5), p90: quantile(c.oldCpuMs, 0.9) },
      processNewCpuMs: { median: quantile(c.newCpuMs, 0.5), p90: quantile(c.newCpuMs, 0.9) },
      speedup: quantile(c.oldMs, 0.5) / quantile(c.newMs, 0.5),
      bitIdentical: c.mismatches === 0,
      samplingMs: {
        draftDraw: quantile(c.draftDrawMs, 0.5),
        candidatesDrawResolve: quantile(c.candidatesMs, 0.5),
        residual: quantile(c.residualMs, 0.5),
      },
      rejections: c.rejections,
      directShare: c.rejections ? c.direct / c.rejections : 0,
      kMedian: quantile(c.ks, 0.5),
      fallbackRate: candRej ? c.fallbacks / candRej : 0,
      fallbackRateExpected: candRej ? c.expectedFallbacks / candRej : 0,
      downlinkBytesPerRejection: c.rejections ? c.bytes / c.rejections : 0,
      downlinkBytesPerRejectionExpected: c.rejections ? c.expectedBytes / c.rejections : 0,
      k32FallbackRateExpected: c.fb32Weighted / c.rejWeight,
      k32DenseBytesPerRejectionExpected: c.bytes32Weighted / c.rejWeight,
      dsdUplinkBytesPerRound: dsdDraftFrameSize(GAMMA, V, 'f32'),
      dsdUplinkBytesPerRoundF16: dsdDraftFrameSize(GAMMA, V, 'f16'),
      dssdUplinkBytesPerRound: draftFrameSize(GAMMA, V, true),
    };
    results.push(row);
    console.log(
      `  ${scenario.name} / ${t.name}: α ${f(row.alpha, 3)} | process old ${f(row.processOldMs.median)}/` +
        `${f(row.processOldMs.p90)} ms, new ${f(row.processNewMs.median)}/${f(row.processNewMs.p90)} ms ` +
        `(×${f(row.speedup, 1)}${row.bitIdentical ? ', bit-identical' : ', MISMATCH'}; CPU old ` +
        `${f(row.processOldCpuMs.median)}, new ${f(row.processNewCpuMs.median)}/${f(row.processNewCpuMs.p90)}) | K ${f(row.kMedian, 0)} ` +
        `direct ${f(100 * row.directShare, 0)}% | fall-back ${f(100 * row.fallbackRate)}% ` +
        `(exp ${f(100 * row.fallbackRateExpected)}%; K=32 ${f(100 * row.k32FallbackRateExpected)}%) | ` +
        `${f(row.downlinkBytesPerRejection, 0)} B/rej (exp ${f(row.downlinkBytesPerRejectionExpected, 0)}; ` +
        `K=32+f32 ${f(row.k32DenseBytesPerRejectionExpected, 0)})`,
    );
  }
}

const header =
  '| scenario | truncation | α | old ms (med / p90) | new ms (med / p90) | × | CPU ms old / new (med; new p90) | K (median) | direct | ' +
  'fall-back (realised / expected) | B per rejection (realised / expected) | K=32 + dense f32: fall-back, B/rej |';
const lines = [
  `# Kernel benchmark, |V| = ${V} (${DATE})`,
  '',
  `\`npm run bench:kernel\` — ${POSITIONS} positions × ${REPLICAS} acceptance tests per scenario, ${TIMED} timed ` +
    `positions per cell (spread over the stream${gc ? ', each after a full GC' : ''}), seed ${SEED}, Node ` +
    `${process.version}, single thread, Float32Array logits. ` +
    'Target logits −a·ln(rank) over a random rank→id permutation per position, draft = target + σ·N(0,1). ' +
    'α = E[1 − TV] over positions. Processing: the original implementation (test/reference-sampling.ts) and the ' +
    'current one on the same logits, interleaved, outputs compared bit for bit. K from CandidateCountChooser fed ' +
    "the device's trial reports, charging a fall-back its response frame (P_j in its smallest exact encoding, " +
    `codec \`auto\`) plus ${RTT_PENALTY} B for the extra round trip; bytes reported are bytes sent. ` +
    '"direct": P_j sent exactly instead of candidates because that is cheaper. Expected columns ' +
    'use the exact (1 − TV)^K per rejection. K=32 + dense f32: the previous fixed K and dense fall-back, expected ' +
    'over all positions weighted by their rejection probability.',
  '',
  header,
  '|' + ' --- |'.repeat(12),
  ...results.map((r) => {
    const o = r.processOldMs as { median: number; p90: number };
    const n = r.processNewMs as { median: number; p90: number };
    const oc = r.processOldCpuMs as { median: number; p90: number };
    const nc = r.processNewCpuMs as { median: number; p90: number };
    return (
      `| ${r.scenario} | ${r.truncation} | ${f(r.alpha as number, 3)} | ${f(o.median)} / ${f(o.p90)} | ` +
      `${f(n.median)} / ${f(n.p90)} | ${f(r.speedup as number, 1)} | ${f(oc.median)} / ${f(nc.median)}; ${f(nc.p90)} | ${f(r.kMedian as number, 0)} | ` +
      `${f(100 * (r.directShare as number), 0)}% | ${f(100 * (r.fallbackRate as number))}% / ` +
      `${f(100 * (r.fallbackRateExpected as number))}% | ${f(r.downlinkBytesPerRejection as number, 0)} / ` +
      `${f(r.downlinkBytesPerRejectionExpected as number, 0)} | ` +
      `${f(100 * (r.k32FallbackRateExpected as number))}%, ${f(r.k32DenseBytesPerRejectionExpected as number, 0)} |`
    );
  }),
  '',
  '| scenario | truncation | draft draw ms | candidates draw + resolve ms | residual ms |',
  '| --- | --- | --- | --- | --- |',
  ...results.map((r) => {
    const s = r.samplingMs as Record<string, number>;
    return `| ${r.scenario} | ${r.truncation} | ${f(s.draftDraw)} | ${f(s.candidatesDrawResolve)} | ${f(s.residual)} |`;
  }),
  '',
  `Uplink per round (γ = ${GAMMA}): DSSD ${draftFrameSize(GAMMA, V, true)} B; DSD ` +
    `${dsdDraftFrameSize(GAMMA, V, 'f32')} B (f32) / ${dsdDraftFrameSize(GAMMA, V, 'f16')} B (f16).`,
  '',
];
mkdirSync(OUT_DIR, { recursive: true });
const base = `${OUT_DIR}/${DATE}-kernel`;
writeFileSync(`${base}.md`, lines.join('\n'));
writeFileSync(
  `${base}.json`,
  JSON.stringify(
    { date: DATE, vocab: V, positions: POSITIONS, replicas: REPLICAS, timed: TIMED, seed: SEED, results },
    null,
    2,
  ) + '\n',
);
console.log(`wrote ${base}.md and .json (${((performance.now() - started) / 1000).toFixed(0)} s)`);
