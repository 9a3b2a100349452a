/**
 * Pipelined drafting, edge side: the device streams blocks of drafts without waiting for verdicts, and the edge
 * verifies them in order against the true prefix. This is speculative decoding with a longer draft, verified
 * token by token, and it is exact only if these invariants hold (each enforced here, each tested):
 *
 * - No bonus chosen by timing: a fully accepted block never gets a bonus token (the next block's first draft is
 *   verified against the distribution that follows it). Sampling one because nothing else has arrived yet would
 *   make the emitted token's law depend on timing.
 * - No reuse of consumed uniforms: block numbers strictly increase; a block whose number is not above the last
 *   verified one is stale (a duplicate, or drafted before a rejection the device had not yet seen).
 * - Stale blocks change nothing: after a rejection every block until the one that carries the resampled token
 *   was drafted on a discarded prefix; it is dropped without consuming uniforms or touching any state.
 * - The resampled token is fed first: the block that carries it continues from the corrected prefix.
 */
import { KernelError, KernelErrorCode } from './errors.js';
import type { RoundRng } from './rng.js';
import { EXACT_RULES, verifyDssdRound, type DssdVerdict, type RoundRules, type Rows } from './round.js';

export interface PipelineBlock {
  /** Block number (the wire round): strictly increasing within a turn, never reused. */
  index: number;
  /** The block carries the token the device resampled after the last rejection. */
  carriesResample: boolean;
  drafts: ArrayLike<number>;
  /** q_i = Q_i(x_i) as uplinked. */
  q: ArrayLike<number>;
}

/** stale: dropped without effect; otherwise the block's verdict (never with a bonus). */
export type PipelineResult = { stale: true } | ({ stale: false } & DssdVerdict);

export class PipelineVerifier {
  private last = -1;
  private awaitingResample = false;

  constructor(private readonly rules: RoundRules = EXACT_RULES) {}

  /** Whether `b` would be dropped as stale (no state is read beyond the block's number and marker). */
  isStale(b: Pick<PipelineBlock, 'index' | 'carriesResample'>): boolean {
    return b.index <= this.last || (this.awaitingResample && !b.carriesResample);
  }

  /**
   * Verifies one block. `target(i)` is P_i for the block's i-th draft (1-based) and is only called for positions
   * the scan reaches; `rng(index)` gives the block's uniforms. Throws KernelError(InvalidArgument) for a block
   * that carries a resampled token nobody asked for (a protocol violation, not a stale block).
   */
  verify(b: PipelineBlock, target: Rows, rng: (index: number) => RoundRng): PipelineResult {
    if (this.isStale(b)) return { stale: true };
    if (b.carriesResample && !this.awaitingResample) {
      throw new KernelError(
        KernelErrorCode.InvalidArgument,
        'a resampled token arrived with no rejection to follow',
      );
    }
    if (!Number.isSafeInteger(b.index) || b.index < 0) {
      throw new KernelError(
        KernelErrorCode.InvalidArgument,
        `block number ${b.index} is not an integer >= 0`,
      );
    }
    const v = verifyDssdRound({
      target,
      drafts: b.drafts,
      q: b.q,
      rng: rng(b.index),
      bonus: false,
      rules: this.rules,
    });
    this.last = b.index;
    this.awaitingResample = v.rejectedAt !== null;
    return { stale: false, ...v };
  }

  /**
   * A new turn whose turn frame took number `turnIndex`: nothing is awaited any more, and every block numbered
   * up to it belongs to an earlier turn (stale).
   */
  reset(turnIndex: number): void {
    this.awaitingResample = false;
    this.last = Math.max(this.last, turnIndex);
  }
}
