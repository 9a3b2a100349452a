/**
 * Speculative-decoding statistics with vLLM's fixed definitions, so numbers are comparable across runs/engines:
 * a "draft" is a round that drafted at least one token; mean acceptance length = 1 + accepted / drafts.
 */
import { KernelError, KernelErrorCode } from './errors.js';

/** What a round ended with, beyond its drafted/accepted counts. */
export interface RoundOutcome {
  /** All drafts accepted and a bonus token emitted (default: accepted === drafted). */
  bonus?: boolean;
  /** A residual token was sampled after a rejection (default: accepted < drafted). */
  resampled?: boolean;
  /** The candidate residual was tried and every candidate failed. */
  fallback?: boolean;
  /** A full distribution P_j was sent downlink (dense residual, or after a candidate fall-back). */
  fullRequest?: boolean;
}

/** Plain-object form of SpecStats, as produced by toJSON(). */
export interface SpecStatsJSON {
  rounds: number;
  drafts: number;
  draftedTokens: number;
  acceptedTokens: number;
  bonusTokens: number;
  resampledTokens: number;
  fallbacks: number;
  fullRequests: number;
  acceptedAtPosition: number[];
  draftedAtPosition: number[];
  meanAcceptanceLength: number;
  acceptanceRate: number;
  acceptancePerPosition: number[];
}

function checkCount(v: number, what: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new KernelError(KernelErrorCode.InvalidArgument, `${what} must be an integer >= 0, got ${v}`);
  }
}

/** Accumulates per-round counts; merge() combines sessions or workers. */
export class SpecStats {
  /** Rounds recorded, including rounds that drafted nothing. */
  rounds = 0;
  /** Rounds with at least one drafted token (vLLM num_drafts). */
  drafts = 0;
  draftedTokens = 0;
  acceptedTokens = 0;
  bonusTokens = 0;
  resampledTokens = 0;
  fallbacks = 0;
  fullRequests = 0;
  /** acceptedAtPosition[i]: rounds whose position i+1 was accepted. */
  acceptedAtPosition: number[] = [];
  /** draftedAtPosition[i]: rounds that drafted at least i+1 tokens. */
  draftedAtPosition: number[] = [];

  /** Records one round: `drafted` tokens proposed, the first `accepted` of them accepted. */
  recordRound(drafted: number, accepted: number, outcome: RoundOutcome = {}): void {
    checkCount(drafted, 'drafted');
    checkCount(accepted, 'accepted');
    if (accepted > drafted) {
      throw new KernelError(KernelErrorCode.InvalidArgument, `accepted ${accepted} > drafted ${drafted}`);
    }
    this.rounds++;
    if (drafted > 0) this.drafts++;
    this.draftedTokens += drafted;
    this.acceptedTokens += accepted;
    for (let i = 0; i < drafted; i++) {
      this.draftedAtPosition[i] = (this.draftedAtPosition[i] ?? 0) + 1;
      if (i < accepted) this.acceptedAtPosition[i] = (this.acceptedAtPosition[i] ?? 0) + 1;
      else this.acceptedAtPosition[i] ??= 0;
    }
    if (outcome.bonus ?? accepted === drafted) this.bonusTokens++;
    if (outcome.resampled ?? accepted < drafted) this.resampledTokens++;
    if (outcome.fallback) this.fallbacks++;
    if (outcome.fullRequest) this.fullRequests++;
  }

  /** 1 + accepted / drafts (1 when nothing was drafted). */
  get meanAcceptanceLength(): number {
    return this.drafts === 0 ? 1 : 1 + this.acceptedTokens / this.drafts;
  }

  /** accepted / drafted tokens (0 when nothing was drafted). */
  get acceptanceRate(): number {
    return this.draftedTokens === 0 ? 0 : this.acceptedTokens / this.draftedTokens;
  }

  /** Per position i: rounds with position i+1 accepted / rounds that drafted at least i+1 tokens. */
  get acceptancePerPosition(): number[] {
    return this.draftedAtPosition.map((d, i) => (this.acceptedAtPosition[i] ?? 0) / d);
  }

  /** Adds another accumulator's counts into this one. */
  merge(other: SpecStats | SpecStatsJSON): this {
    this.rounds += other.rounds;
    this.drafts += other.drafts;
    this.draftedTokens += other.draftedTokens;
    this.acceptedTokens += other.acceptedTokens;
    this.bonusTokens += other.bonusTokens;
    this.resampledTokens += other.resampledTokens;
    this.fallbacks += other.fallbacks;
    this.fullRequests += other.fullRequests;
    const len = Math.max(this.draftedAtPosition.length, other.draftedAtPosition.length);
    for (let i = 0; i < len; i++) {
      this.draftedAtPosition[i] = (this.draftedAtPosition[i] ?? 0) + (other.draftedAtPosition[i] ?? 0);
      this.acceptedAtPosition[i] = (this.acceptedAtPosition[i] ?? 0) + (other.acceptedAtPosition[i] ?? 0);
    }
    return this;
  }

  /** Counters plus the derived rates, for logs and benchmark results. */
  toJSON(): SpecStatsJSON {
    return {
      rounds: this.rounds,
      drafts: this.drafts,
      draftedTokens: this.draftedTokens,
      acceptedTokens: this.acceptedTokens,
      bonusTokens: this.bonusTokens,
      resampledTokens: this.resampledTokens,
      fallbacks: this.fallbacks,
      fullRequests: this.fullRequests,
      acceptedAtPosition: [...this.acceptedAtPosition],
      draftedAtPosition: [...this.draftedAtPosition],
      meanAcceptanceLength: this.meanAcceptanceLength,
      acceptanceRate: this.acceptanceRate,
      acceptancePerPosition: this.acceptancePerPosition,
    };
  }

  /** Rebuilds an accumulator from toJSON() output (derived fields are recomputed). */
  static fromJSON(json: SpecStatsJSON): SpecStats {
    return new SpecStats().merge(json);
  }
}
