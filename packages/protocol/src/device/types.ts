/** The device's public types: options, token events and per-turn statistics. */
import type { DoneReason } from '@dssd/codec';
import type { RoundRules } from '@dssd/kernel';
import type { LmSession } from '../lm.js';
import type { ModelIdentity, PartialSettings } from '../settings.js';
import type { FrameTransport } from '../wire/transport.js';

/** Where a generated token came from (the page colours text by it). */
export type TokenOrigin = 'draft' | 'resampled' | 'bonus' | 'edge' | 'unverified';

export interface TokenEvent {
  tokens: number[];
  origin: TokenOrigin;
}

export interface DeviceOptions {
  transport: FrameTransport;
  /** Identity of the device's model (the drafter's tokenizer must match the edge's). */
  model: ModelIdentity;
  /** The draft model's session; required for dsd and dssd. */
  drafter?: LmSession;
  settings: PartialSettings;
  /** Pick γ per round from measured acceptance and timings (settings.gamma is then the upper bound). */
  adaptiveGamma?: boolean;
  /** The device's own seed for its draws when the session has no seed. */
  secretSeed?: number;
  /** The residual's decision rules (default: the kernel's exact ones; test tools wrap them). */
  rules?: RoundRules;
  /**
   * EMULATION: pads each drafted token to this many ms with an asynchronous sleep (a browser draft's cost on a
   * device that drafts faster), so benchmarks can measure with realistic draft costs. A sleep's overshoot is
   * carried into the next pads (at most one token's cost), so the mean cost per drafted token is this one.
   */
  draftCostMs?: number;
  /** How long to wait for any edge frame. */
  timeoutMs?: number;
  /**
   * Opens a fresh transport to the same edge (new signaling, new peer connection) to resume session `sessionId`
   * after a drop.
   */
  reconnect?: (resume: { sessionId: number }) => Promise<FrameTransport>;
  /** Re-sync and resume budget per turn (default: off), and the wait between reconnect attempts. */
  recovery?: { maxAttempts?: number; backoffMs?: number };
  /**
   * Opt-in: when the edge stays unreachable, finish the answer with the draft model alone. Those tokens have the
   * origin 'unverified': nothing checked them against the target.
   */
  offlineFallback?: boolean;
  now?: () => number;
}

export interface GenerateOptions {
  maxNewTokens: number;
  onTokens?: (ev: TokenEvent) => void;
  signal?: AbortSignal;
}

export interface TurnStats {
  rounds: number;
  drafts: number;
  draftedTokens: number;
  acceptedTokens: number;
  acceptancePerPosition: number[];
  meanAcceptanceLength: number;
  bonusTokens: number;
  resampledTokens: number;
  fallbacks: number;
  /** Target forward passes this turn caused: one per verify round, one per token in ar. */
  llmForwardPasses: number;
  uplinkBytes: number;
  downlinkBytes: number;
  messagesUp: number;
  messagesDown: number;
  generatedTokens: number;
  wallMs: number;
  tokensPerSecond: number;
  /** Time in the draft model (forward passes and processing). */
  draftMs: number;
  /** Tokens the draft model produced, verified or wasted: draftMs / draftSteps is the cost of one draft. */
  draftSteps: number;
  /** Time from sending an uplink frame to its answer: network plus edge verify. */
  waitMs: number;
  /** Time in the kernel on the device (decode, residual, candidates). */
  kernelMs: number;
  /** γ used per round. */
  gammas: number[];
  /** Re-syncs and resumes this turn needed (faults survived). */
  recoveries: number;
  /** Tokens generated offline by the draft model alone (origin 'unverified'). */
  unverifiedTokens: number;
  /** Drafted tokens thrown away unverified or beyond a rejection in pipelined mode (drafting ahead's cost). */
  wastedDrafts: number;
}

export interface TurnResult {
  /** New tokens of this turn (an end-of-sequence token is not included). */
  tokens: number[];
  origins: TokenOrigin[];
  done: DoneReason;
  stats: TurnStats;
}
