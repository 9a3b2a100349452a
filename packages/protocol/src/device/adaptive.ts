/**
 * Adaptive draft length: picks γ each round to maximise expected tokens per second under the latency model,
 * from running estimates of the acceptance per position, the draft time per token and the round trip.
 *
 * Acceptance is tracked per position (β_k = P(x_k accepted | x_1..x_{k-1} accepted)) rather than as one i.i.d. α:
 * real pairs accept later positions less often, and an i.i.d. α then overrates long drafts. Positions seldom
 * tested lean on the position before them. The round trip
 * is tracked separately for rounds that ended in a rejection (the downlink then carries P_j, which can be large
 * on a slow link) and rounds that were fully accepted (one token down).
 */

import { pipelinedTokensPerSecond } from '@dssd/kernel';

export interface RoundObservation {
  gamma: number;
  accepted: number;
  draftMs: number;
  /** Uplink to verdict: network round trip plus the edge's verify pass. */
  waitMs: number;
}

/** Pseudo-count pulling a position's β toward the pooled α until it has been tested a few times. */
const PRIOR_WEIGHT = 2;

export class GammaController {
  private accepted = 0;
  private trials = 0;
  /** Decayed counts per position k (index k−1): times tested, times accepted. */
  private posTried: number[] = [];
  private posAccepted: number[] = [];
  private draftPerToken = 0;
  private waitAccept: number | null = null;
  private waitReject: number | null = null;
  private n = 0;

  constructor(
    readonly maxGamma: number,
    /** Start at the bound: long first drafts measure acceptance at every position at once. */
    readonly initialGamma = maxGamma,
    /** Weight of a new observation in the running means. */
    readonly smoothing = 0.1,
  ) {}

  /** Pooled α estimate: per-token acceptance over tested positions (a rejection ends a round's trials). */
  get alpha(): number {
    return this.trials ? Math.min(0.999, Math.max(0.01, this.accepted / this.trials)) : 0.7;
  }

  /**
   * β_k estimate for position k ≥ 1. A position seldom tested leans on its predecessor's estimate (acceptance
   * does not rise with depth), not on the pooled α: positions beyond the γ usually chosen are rarely tested, and
   * the pooled α, dominated by early positions, would overrate them and make the controller overshoot.
   */
  positionAcceptance(k: number): number {
    const prior = k === 1 ? this.alpha : this.positionAcceptance(k - 1);
    const tried = this.posTried[k - 1] ?? 0;
    const acc = this.posAccepted[k - 1] ?? 0;
    const b = (acc + PRIOR_WEIGHT * prior) / (tried + PRIOR_WEIGHT);
    return Math.min(0.999, Math.max(0.01, b));
  }

  observe(o: RoundObservation): void {
    // Positions tested this round: accepted ones, plus the rejected one if any.
    const rejected = o.accepted < o.gamma;
    const tested = rejected ? o.accepted + 1 : o.gamma;
    const decay = 1 - this.smoothing;
    this.accepted = this.accepted * decay + o.accepted;
    this.trials = this.trials * decay + tested;
    const len = Math.max(this.posTried.length, tested);
    for (let i = 0; i < len; i++) {
      this.posTried[i] = (this.posTried[i] ?? 0) * decay + (i < tested ? 1 : 0);
      this.posAccepted[i] = (this.posAccepted[i] ?? 0) * decay + (i < o.accepted ? 1 : 0);
    }
    const w = this.n === 0 ? 1 : this.smoothing;
    if (o.gamma > 0) this.draftPerToken += w * (o.draftMs / o.gamma - this.draftPerToken);
    if (o.gamma > 0) {
      if (rejected) this.waitReject = ema(this.waitReject, o.waitMs, this.smoothing);
      else this.waitAccept = ema(this.waitAccept, o.waitMs, this.smoothing);
    }
    this.n++;
  }

  /** Draft time per token (running mean), ms. */
  get draftMsPerToken(): number {
    return this.draftPerToken;
  }

  /** Uplink to verdict (round trip plus the edge's pass), running mean over accepted and rejected rounds. */
  get verdictLatencyMs(): number | null {
    return this.waitAccept ?? this.waitReject;
  }

  /** Predicted tokens per ms for a draft length. */
  predict(gamma: number): number {
    let tokens = 1;
    let allAccepted = 1;
    for (let k = 1; k <= gamma; k++) {
      allAccepted *= this.positionAcceptance(k);
      tokens += allAccepted;
    }
    const wa = this.waitAccept ?? this.waitReject ?? 0;
    const wr = this.waitReject ?? wa;
    const t = gamma * this.draftPerToken + wa + (1 - allAccepted) * (wr - wa);
    return tokens / Math.max(t, 1e-3);
  }

  choose(): number {
    if (this.n < 2) return this.initialGamma;
    let best = 1;
    let bestV = -1;
    for (let g = 1; g <= this.maxGamma; g++) {
      const v = this.predict(g);
      if (v > bestV) {
        bestV = v;
        best = g;
      }
    }
    return best;
  }
}

/** The most blocks a pipelined window may hold (more only adds drafts a rejection throws away). */
const MAX_WINDOW_BLOCKS = 4;

export interface PipelineChoice {
  block: number;
  window: number;
}

/**
 * Pipelined mode: the block size and window that maximise the pipelined model (kernel
 * `pipelinedTokensPerSecond`) under the running α, draft time per token and verdict latency; among choices within
 * 1% of the best, the smallest window (fewer wasted drafts), then the smallest block.
 */
export function choosePipeline(c: GammaController, fallbackWindowBlocks: number): PipelineChoice {
  const initial = { block: c.initialGamma, window: fallbackWindowBlocks * c.initialGamma };
  const latency = c.verdictLatencyMs;
  if (latency === null || c.draftMsPerToken <= 0) return initial;
  const options: (PipelineChoice & { v: number })[] = [];
  for (let g = 1; g <= c.maxGamma; g++) {
    for (let b = 1; b <= MAX_WINDOW_BLOCKS; b++) {
      const v = pipelinedTokensPerSecond({
        alpha: c.alpha,
        draftMs: c.draftMsPerToken,
        passMs: () => 0, // the measured latency already holds the edge's pass
        rttMs: latency,
        block: g,
        window: b * g,
      });
      options.push({ block: g, window: b * g, v });
    }
  }
  const best = Math.max(...options.map((o) => o.v));
  const good = options.filter((o) => o.v >= 0.99 * best);
  good.sort((a, b) => a.window - b.window || a.block - b.block);
  return { block: good[0].block, window: good[0].window };
}

function ema(prev: number | null, x: number, w: number): number {
  return prev === null ? x : prev + w * (x - prev);
}
