/**
 * One-sample goodness-of-fit of emitted tokens against the target's exact processed probabilities: the
 * randomized probability integral transform of every emitted token must be U(0,1) (Kolmogorov–Smirnov), and
 * the first tokens must follow P_1 (chi-square over equal-mass bins).
 */
import { SessionRng } from '@dssd/kernel';
import type { DeviceOptions } from '@dssd/protocol';
import { PLANTED_BUGS, plantedRules, type PlantedBug } from '@dssd/protocol/testing';
import { parseArgs } from 'node:util';
import { EDGE_NODE_DEFAULTS } from '@dssd/protocol';
import { deviceFlags, deviceSettings, fail, num } from '../flags.js';
import { connectNodeDevice } from '../device/node.js';

/** P(D_n > d) for the one-sample KS statistic (asymptotic with Stephens' small-n correction). */
export function ksPValue(d: number, n: number): number {
  const sn = Math.sqrt(n);
  const lambda = (sn + 0.12 + 0.11 / sn) * d;
  if (lambda < 1e-3) return 1;
  let sum = 0;
  for (let j = 1; j <= 200; j++) {
    const term = 2 * (j % 2 ? 1 : -1) * Math.exp(-2 * j * j * lambda * lambda);
    sum += term;
    if (Math.abs(term) < 1e-12) break;
  }
  return Math.min(1, Math.max(0, sum));
}

/** KS statistic of samples against U(0,1). */
export function ksUniform(u: number[]): number {
  const s = [...u].sort((a, b) => a - b);
  const n = s.length;
  let d = 0;
  for (let i = 0; i < n; i++) d = Math.max(d, (i + 1) / n - s[i], s[i] - i / n);
  return d;
}

function lnGamma(x: number): number {
  const c = [
    76.18009172947146, -86.50532032941677, 24.01409824083091, -1.231739572450155, 0.1208650973866179e-2,
    -0.5395239384953e-5,
  ];
  let y = x;
  const tmp = x + 5.5 - (x + 0.5) * Math.log(x + 5.5);
  let ser = 1.000000000190015;
  for (const ci of c) ser += ci / ++y;
  return -tmp + Math.log((2.5066282746310005 * ser) / x);
}

/** Upper regularized incomplete gamma Q(a, x). */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  if (x < a + 1) {
    let sum = 1 / a;
    let del = sum;
    let ap = a;
    for (let n = 0; n < 1000; n++) {
      del *= x / ++ap;
      sum += del;
      if (Math.abs(del) < Math.abs(sum) * 1e-15) break;
    }
    return 1 - sum * Math.exp(-x + a * Math.log(x) - lnGamma(a));
  }
  let b = x + 1 - a;
  let c = 1 / 1e-300;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < 1e-300) d = 1e-300;
    c = b + an / c;
    if (Math.abs(c) < 1e-300) c = 1e-300;
    d = 1 / d;
    const del = d * c;
    h *= del;
    if (Math.abs(del - 1) < 1e-15) break;
  }
  return Math.exp(-x + a * Math.log(x) - lnGamma(a)) * h;
}

export function chiSquarePValue(stat: number, dof: number): number {
  return gammaQ(dof / 2, stat / 2);
}

export interface FidelityReport {
  pValue: number;
  samples: number;
  tokens: number;
  ks: { statistic: number; pValue: number; n: number };
  chiSquare: { statistic: number; dof: number; pValue: number; bins: number };
}

/**
 * scores[s][t] = [P(< token), P(token)] for sample s, position t; first = P_1 (the first token's law);
 * firstTokens[s] = the first emitted token of sample s.
 */
export function fidelityTest(
  scores: [number, number][][],
  first: ArrayLike<number>,
  firstTokens: number[],
): FidelityReport {
  const rng = new SessionRng(20260101);
  const u: number[] = [];
  scores.forEach((seq, s) =>
    seq.forEach(([below, p], t) => {
      u.push(Math.min(1, below + rng.ar(s, t) * p));
    }),
  );
  const d = ksUniform(u);
  const ksP = ksPValue(d, u.length);
  // Equal-mass bins over P_1, most likely tokens first, each expecting ≥ 5 samples.
  const n = firstTokens.length;
  const B = Math.max(2, Math.min(20, Math.floor(n / 5)));
  const order = Array.from(first, (p, i) => [p, i] as [number, number])
    .filter(([p]) => p > 0)
    .sort((a, b) => b[0] - a[0]);
  const binOf = new Map<number, number>();
  const mass: number[] = [];
  let acc = 0;
  let bin = 0;
  for (const [p, i] of order) {
    binOf.set(i, bin);
    mass[bin] = (mass[bin] ?? 0) + p;
    acc += p;
    if (acc >= (bin + 1) / B && bin < B - 1) bin++;
  }
  const counts = new Array(mass.length).fill(0);
  let outside = 0;
  for (const t of firstTokens) {
    const b = binOf.get(t);
    if (b === undefined) outside++;
    else counts[b]++;
  }
  let stat = 0;
  mass.forEach((m, b) => {
    const e = m * n;
    stat += e > 0 ? (counts[b] - e) ** 2 / e : 0;
  });
  // A first token with probability 0 is impossible under the target: infinite evidence.
  if (outside) stat = Infinity;
  const dof = Math.max(1, mass.length - 1);
  const chiP = outside ? 0 : chiSquarePValue(stat, dof);
  return {
    pValue: Math.min(1, 2 * Math.min(ksP, chiP)),
    samples: scores.length,
    tokens: u.length,
    ks: { statistic: d, pValue: ksP, n: u.length },
    chiSquare: { statistic: stat, dof, pValue: chiP, bins: mass.length },
  };
}

/** Samples `samples` continuations of a prompt from a device and tests them against the edge's /score. */
export async function runFidelity(o: {
  edge: string;
  prompt: string;
  tokens: number;
  samples: number;
  settings: DeviceOptions['settings'];
  draftDir?: string;
  /** The edge's join credential; /score needs it too whenever the edge has one. */
  token?: string;
  /** A planted device-side bug, to show that the test catches it. */
  plantedBug?: PlantedBug;
  onProgress?: (done: number, total: number) => void;
}) {
  const dev = await connectNodeDevice({
    edge: o.edge,
    settings: o.settings,
    draftDir: o.draftDir,
    token: o.token,
    ...(o.plantedBug ? { rules: plantedRules(o.plantedBug) } : {}),
  });
  try {
    const ids = dev.draft.tokenizer.encode(o.prompt);
    if (ids.length === 0) throw new Error('the prompt encodes to no tokens');
    const P = ids.length;
    const seqs: number[][] = [];
    for (let i = 0; i < o.samples; i++) {
      if (i === 0) await dev.session.generate(ids, { maxNewTokens: o.tokens });
      else {
        dev.session.rewind(P - 1);
        await dev.session.generate([ids[P - 1]], { maxNewTokens: o.tokens });
      }
      seqs.push(dev.session.history.slice(P, P + o.tokens));
      if (o.onProgress && (i + 1) % 100 === 0) o.onProgress(i + 1, o.samples);
    }
    const res = await fetch(new URL('/score', o.edge.replace(/^ws/, 'http')), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      },
      body: JSON.stringify({ prompt: ids, continuations: seqs, sampling: dev.session.settings.sampling }),
    });
    const body = (await res.json()) as { first: number[]; scores: [number, number][][]; error?: string };
    if (!res.ok) throw new Error(`the edge could not score: ${body.error}`);
    const report = fidelityTest(
      body.scores,
      body.first,
      seqs.map((s) => s[0]),
    );
    return { ...report, mode: dev.session.settings.mode, codec: dev.session.settings.codec };
  } finally {
    dev.close();
  }
}

/** `dssd fidelity`: sample from a device and test the law against the edge's exact probabilities. */
export async function fidelityCommand(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: deviceFlags });
  if (v.prompt === undefined) fail('--prompt is required');
  const { settings } = deviceSettings(v);
  const bug = v['plant-bug'] as string | undefined;
  if (bug !== undefined && !PLANTED_BUGS.includes(bug as never))
    fail(`--plant-bug must be one of ${PLANTED_BUGS.join(', ')}`);
  const t0 = performance.now();
  const rep = await runFidelity({
    edge: v.edge ?? `http://localhost:${EDGE_NODE_DEFAULTS.port}`,
    prompt: v.prompt,
    tokens: num(v.tokens, 'tokens', 2, true),
    samples: num(v.samples, 'samples', 1000, true),
    settings,
    draftDir: v.draft,
    token: v.token,
    ...(bug ? { plantedBug: bug as PlantedBug } : {}),
    onProgress: (d, n) => process.stderr.write(`\r  ${d}/${n} samples`),
  });
  process.stderr.write('\n');
  if (v.json)
    process.stdout.write(JSON.stringify({ ...rep, seconds: (performance.now() - t0) / 1000 }) + '\n');
  else
    process.stdout.write(
      `${rep.mode}${rep.mode === 'dssd' ? `/${rep.codec}` : ''}: ${rep.samples} samples, ${rep.tokens} tokens: ` +
        `KS D = ${rep.ks.statistic.toFixed(4)} (p = ${rep.ks.pValue.toPrecision(3)}), chi-square = ${rep.chiSquare.statistic.toFixed(1)} ` +
        `on ${rep.chiSquare.dof} dof (p = ${rep.chiSquare.pValue.toPrecision(3)}); combined p = ${rep.pValue.toPrecision(3)}\n`,
    );
}
