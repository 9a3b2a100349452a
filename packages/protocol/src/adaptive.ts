/**
 * Adaptive draft length: picks γ each round to maximise expected tokens per second under the latency model,
 * from running estimates of the acceptance rate α, the draft time per token and the round's fixed cost.
 */
import { expectedTokensPerRound } from '@dssd/kernel';

export interface RoundObservation {
  gamma: number;
  accepted: number;
  draftMs: number;
  /** Uplink to verdict: network round trip plus the edge's verify pass. */
  waitMs: number;
}

export class GammaController {
  private accepted = 0;
  private trials = 0;
  private draftPerToken = 0;
  private waitBase = 0;
  private waitPerToken = 0;
  private n = 0;

  constructor(
    readonly maxGamma: number,
    readonly initialGamma = Math.min(4, maxGamma),
    /** Weight of a new observation in the running means. */
    readonly smoothing = 0.1,
  ) {}

  /** α estimate: per-token acceptance over tested positions (a rejection ends a round's trials). */
  get alpha(): number {
    return this.trials ? Math.min(0.999, Math.max(0.01, this.accepted / this.trials)) : 0.7;
  }

  observe(o: RoundObservation): void {
    // Positions tested this round: accepted ones, plus the rejected one if any.
    const tested = o.accepted < o.gamma ? o.accepted + 1 : o.gamma;
    const decay = 1 - this.smoothing;
    this.accepted = this.accepted * decay + o.accepted;
    this.trials = this.trials * decay + tested;
    const w = this.n === 0 ? 1 : this.smoothing;
    if (o.gamma > 0) this.draftPerToken += w * (o.draftMs / o.gamma - this.draftPerToken);
    this.waitBase += w * (o.waitMs - this.waitPerToken * o.gamma - this.waitBase);
    this.n++;
  }

  /** Predicted tokens per ms for a draft length. */
  predict(gamma: number): number {
    const t = gamma * this.draftPerToken + this.waitBase + this.waitPerToken * gamma;
    return expectedTokensPerRound(this.alpha, gamma) / Math.max(t, 1e-3);
  }

  choose(): number {
    if (this.n < 3) return this.initialGamma;
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
