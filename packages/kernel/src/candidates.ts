/**
 * Choosing K, the number of exact candidates sent after a rejection, from what fall-backs depend on.
 *
 * At a rejection at position j each candidate trial succeeds independently with probability TV_j = Σ(P_j − Q_j)⁺,
 * so the number of trials the device needs is geometric in TV_j, and K candidates fall back with probability
 * (1 − TV_j)^K. Across rejections TV_j varies, so the fall-back rate is the mixture E[(1 − TV)^K | rejection]:
 * no single TV estimate predicts it on a heterogeneous stream. The device reports per rejection how many trials
 * it needed, or that all K failed (a censored observation); this module fits the mixing distribution of TV by
 * non-parametric maximum likelihood on a fixed grid (EM, censoring included) over a window of recent reports,
 * and picks the K minimising expected bytes = candidates body(K) + P(fall-back | K) · fall-back cost.
 *
 * K only changes what is sent, never the law of the emitted token (the candidate residual is exact for every K,
 * and a fall-back samples the exact residual), so the chooser is free to be adaptive; it is also deterministic
 * given its reports.
 */
import { KernelError, KernelErrorCode } from './errors.js';

/** Options of CandidateCountChooser. */
export interface CandidateChooserOptions {
  /** |V|: sets the id width of the candidates body. */
  vocabSize: number;
  /** Smallest and largest K considered (defaults 1 and 1024). */
  minK?: number;
  maxK?: number;
  /** K used until `warmup` reports have arrived (default 32, the previous fixed minimum). */
  initialK?: number;
  /** Reports needed before the fit is trusted (default 32). */
  warmup?: number;
  /** Reports kept: older ones are forgotten, so the fit follows a drifting stream (default 16384). */
  window?: number;
  /** Bytes of a candidates body with K entries; default: the codec's layout 5 + ⌈K·b/8⌉ + 4K, b = ⌈log2 |V|⌉. */
  bodyBytes?: (K: number) => number;
}

/** What to send after a rejection: K candidates, or P_j itself (when that is cheaper in expectation). */
export type RejectionPlan =
  | { mode: 'candidates'; K: number; expectedBytes: number; fallbackProbability: number }
  | { mode: 'direct'; expectedBytes: number };

/** Grid of TV values the mixture lives on: log-spaced from 1e-4 to 1. */
const GRID: Float64Array = (() => {
  const points = 128;
  const g = new Float64Array(points);
  for (let k = 0; k < points; k++) g[k] = 10 ** (-4 + (4 * k) / (points - 1));
  return g;
})();
// EM iterations from a flat start and from the previous fit; refits after max(16, reports/16) new reports.
const EM_ITERATIONS_COLD = 300;
const EM_ITERATIONS_WARM = 100;

function checkInt(v: number, what: string, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new KernelError(
      KernelErrorCode.InvalidArgument,
      `${what} must be an integer in [${min}, ${max}], got ${v}`,
    );
  }
}

/** The codec's candidates body size: tag + u32 count + ids packed at ⌈log2 |V|⌉ bits + K float32. */
export function candidatesBodyBytes(K: number, vocabSize: number): number {
  const bits = Math.max(1, 32 - Math.clz32(vocabSize - 1));
  return 5 + Math.ceil((K * bits) / 8) + 4 * K;
}

/**
 * Fits the distribution of candidate trials from device reports and chooses K. Reports: `succeeded(t, K)` when
 * the t-th candidate (1-based) of K was accepted, `fellBack(K)` when all K failed.
 */
export class CandidateCountChooser {
  readonly vocabSize: number;
  readonly minK: number;
  readonly maxK: number;
  readonly initialK: number;
  readonly warmup: number;
  readonly window: number;
  private readonly bodyBytes: (K: number) => number;
  // Ring buffer of reports: trials t (1-based) or -K for a fall-back with K candidates.
  private readonly reports: Int32Array;
  private count = 0;
  private sinceFit = 0;
  private weights: Float64Array | null = null; // mixture weights on GRID; null until fitted
  /** fallback[K] = Σ_g w_g (1 − tv_g)^K for K = 0..maxK, cached per fit. */
  private fallback: Float64Array | null = null;

  constructor(options: CandidateChooserOptions) {
    const { vocabSize, minK = 1, maxK = 1024, initialK = 32, warmup = 32, window = 16384 } = options;
    checkInt(vocabSize, 'vocabSize', 2);
    checkInt(minK, 'minK', 1);
    checkInt(maxK, 'maxK', minK);
    checkInt(initialK, 'initialK', minK, maxK);
    checkInt(warmup, 'warmup', 1);
    checkInt(window, 'window', warmup);
    this.vocabSize = vocabSize;
    this.minK = minK;
    this.maxK = maxK;
    this.initialK = initialK;
    this.warmup = warmup;
    this.window = window;
    this.bodyBytes = options.bodyBytes ?? ((K: number) => candidatesBodyBytes(K, vocabSize));
    this.reports = new Int32Array(window);
  }

  /** Number of reports held (at most `window`). */
  get reportCount(): number {
    return Math.min(this.count, this.window);
  }

  /** The device accepted candidate number `trials` (1-based) out of K. */
  succeeded(trials: number, K: number): void {
    checkInt(K, 'K', 1);
    checkInt(trials, 'trials', 1, K);
    this.push(trials);
  }

  /** All K candidates failed: the trials needed exceed K (a censored observation). */
  fellBack(K: number): void {
    checkInt(K, 'K', 1);
    this.push(-K);
  }

  private push(report: number): void {
    this.reports[this.count % this.window] = report;
    this.count++;
    this.sinceFit++;
    if (this.weights === null || this.sinceFit >= Math.max(16, this.reportCount / 16)) this.fallback = null;
  }

  /** Predicted P(all K candidates fail) for the next rejection; null before `warmup` reports. */
  fallbackProbability(K: number): number | null {
    checkInt(K, 'K', 0);
    const f = this.curve();
    if (f === null) return null;
    if (K < f.length) return f[K];
    return this.mixtureFallback(K);
  }

  /**
   * The K in [minK, maxK] minimising body(K) + P(fall-back | K) · fallbackBytes (initialK during warm-up).
   * fallbackBytes: what a fall-back costs on the wire (request + the exact P_j + any round-trip penalty).
   */
  choose(fallbackBytes: number): number {
    const plan = this.plan(fallbackBytes, Infinity);
    return plan.mode === 'candidates' ? plan.K : this.initialK;
  }

  /**
   * Candidates with the best K, or P_j sent directly when its exact encoding (directBytes, e.g. a sparse body
   * when P_j is truncated) is cheaper than the candidates' expected bytes.
   */
  plan(fallbackBytes: number, directBytes: number): RejectionPlan {
    if (!(fallbackBytes >= 0) || !(directBytes >= 0)) {
      throw new KernelError(KernelErrorCode.InvalidArgument, 'byte costs must be numbers >= 0');
    }
    const f = this.curve();
    let bestK = this.initialK;
    let bestF = f === null ? NaN : f[bestK];
    let best = f === null ? this.bodyBytes(bestK) : this.bodyBytes(bestK) + bestF * fallbackBytes;
    if (f !== null) {
      for (let K = this.minK; K <= this.maxK; K++) {
        const cost = this.bodyBytes(K) + f[K] * fallbackBytes;
        if (cost < best) {
          best = cost;
          bestK = K;
          bestF = f[K];
        }
      }
    }
    if (directBytes < best) return { mode: 'direct', expectedBytes: directBytes };
    return { mode: 'candidates', K: bestK, expectedBytes: best, fallbackProbability: bestF };
  }

  /** The fitted mixture: TV grid points and their weights (null before warm-up). For reports and tests. */
  mixture(): { tv: Float64Array; weight: Float64Array } | null {
    if (this.curve() === null) return null;
    return { tv: GRID.slice(), weight: (this.weights as Float64Array).slice() };
  }

  private mixtureFallback(K: number): number {
    const w = this.weights as Float64Array;
    let f = 0;
    for (let g = 0; g < GRID.length; g++) f += w[g] * (1 - GRID[g]) ** K;
    return f;
  }

  /** fallback[K] for K = 0..maxK, refitting when enough new reports arrived. */
  private curve(): Float64Array | null {
    if (this.reportCount < this.warmup) return null;
    if (this.fallback !== null) return this.fallback;
    this.fit();
    const f = new Float64Array(this.maxK + 1);
    const w = this.weights as Float64Array;
    const pow = Float64Array.from(w);
    for (let K = 0; K <= this.maxK; K++) {
      let s = 0;
      for (let g = 0; g < GRID.length; g++) {
        s += pow[g];
        pow[g] *= 1 - GRID[g];
      }
      f[K] = s;
    }
    this.fallback = f;
    this.sinceFit = 0;
    return f;
  }

  /**
   * EM for the weights of a mixture of geometrics on GRID: an accepted t-th trial has likelihood
   * (1 − tv)^(t−1)·tv, a fall-back with K candidates (1 − tv)^K. Reports are first grouped by value.
   */
  private fit(): void {
    const n = this.reportCount;
    const groups = new Map<number, number>();
    for (let k = 0; k < n; k++) groups.set(this.reports[k], (groups.get(this.reports[k]) ?? 0) + 1);
    const values = [...groups.keys()];
    const counts = Float64Array.from(values, (v) => groups.get(v) as number);
    const G = GRID.length;
    const lik = new Float64Array(values.length * G);
    for (let r = 0; r < values.length; r++) {
      const v = values[r];
      for (let g = 0; g < G; g++) {
        const tv = GRID[g];
        lik[r * G + g] = v > 0 ? (1 - tv) ** (v - 1) * tv : (1 - tv) ** -v;
      }
    }
    // Warm start from the previous fit, blended with a flat start so grid points the old fit had emptied can
    // come back when the stream drifts.
    const w = new Float64Array(G).fill(1 / G);
    if (this.weights) for (let g = 0; g < G; g++) w[g] = 0.99 * this.weights[g] + 0.01 / G;
    const next = new Float64Array(G);
    const iterations = this.weights ? EM_ITERATIONS_WARM : EM_ITERATIONS_COLD;
    for (let it = 0; it < iterations; it++) {
      next.fill(0);
      for (let r = 0; r < values.length; r++) {
        let denom = 0;
        for (let g = 0; g < G; g++) denom += w[g] * lik[r * G + g];
        if (!(denom > 0)) continue;
        const scale = counts[r] / denom;
        for (let g = 0; g < G; g++) next[g] += w[g] * lik[r * G + g] * scale;
      }
      for (let g = 0; g < G; g++) w[g] = next[g] / n;
    }
    this.weights = w;
  }
}
