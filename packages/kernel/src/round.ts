/**
 * One speculative round, as production runs it: the edge's DSSD verification (lazy rows, optional bonus), the
 * device's resampling after a rejection (dense P_j or candidates) and DSD's edge-side round. The edge and the
 * device call these functions and nothing else; the kernel's exact-enumeration and Monte Carlo tests prove them.
 *
 * Rows are supplied lazily (`row(i)`, 1-based), so a rejection at j never processes P_{j+1..γ+1}. The uniforms
 * are taken from the RoundRng key schedule here and nowhere else.
 */
import { KernelError, KernelErrorCode } from './errors.js';
import type { RoundRng } from './rng.js';
import {
  drawCandidates,
  resolveCandidates,
  sampleBonus,
  sampleResidual,
  scanAcceptance,
  type CandidateDraws,
} from './verify.js';

/** Row i (1-based) of a round's distributions, processed on demand. */
export type Rows = (i: number) => ArrayLike<number>;

/**
 * The decision rules a round is built from. Production always uses EXACT_RULES; test tools wrap them to plant
 * bugs (a wrong ratio, a residual without max(0,·)) and show that the checks catch them.
 */
export interface RoundRules {
  scanAcceptance: typeof scanAcceptance;
  sampleResidual: typeof sampleResidual;
}

export const EXACT_RULES: RoundRules = Object.freeze({ scanAcceptance, sampleResidual });

/** The edge's DSSD decision for one round. */
export interface DssdVerdict {
  /** Number of leading drafts accepted (j − 1). */
  accepted: number;
  /** 1-based first rejected position j, or null when every draft was accepted. */
  rejectedAt: number | null;
  /** The bonus token after γ acceptances (null on a rejection, or when the round ends without one). */
  bonus: number | null;
  /** P_j, the row the device resamples from (null when nothing was rejected). */
  rejectedRow: ArrayLike<number> | null;
}

export interface DssdRoundInput {
  /** P_1..P_{γ+1}, processed on demand. */
  target: Rows;
  drafts: ArrayLike<number>;
  /** q_i = Q_i(x_i) as uplinked. */
  q: ArrayLike<number>;
  rng: RoundRng;
  /**
   * Sample the bonus from P_{γ+1} when all γ drafts are accepted (default true). False ends a fully accepted
   * block without one (pipelined drafting: the next block is verified against the distribution that follows).
   */
  bonus?: boolean;
  rules?: RoundRules;
}

function checkQs(q: ArrayLike<number>, gamma: number): void {
  if (q.length !== gamma) {
    throw new KernelError(KernelErrorCode.LengthMismatch, `${gamma} drafts but ${q.length} q values`);
  }
  for (let i = 0; i < gamma; i++) {
    const x = q[i];
    if (typeof x !== 'number' || !(x > 0 && x <= 1)) {
      throw new KernelError(
        KernelErrorCode.InvalidProbability,
        `q at position ${i + 1} must be in (0, 1], got ${String(x)}`,
      );
    }
  }
}

function tokenAt(row: ArrayLike<number>, id: number, i: number): number {
  if (!Number.isInteger(id) || id < 0 || id >= row.length) {
    throw new KernelError(
      KernelErrorCode.TokenOutOfRange,
      `draft ${i} ${id} is not a token id in [0, ${row.length})`,
    );
  }
  return row[id];
}

/** DSSD edge side: accept x_i iff r_i·q_i < P_i(x_i), stopping at the first rejection; then the bonus. */
export function verifyDssdRound(o: DssdRoundInput): DssdVerdict {
  const rules = o.rules ?? EXACT_RULES;
  const gamma = o.drafts.length;
  checkQs(o.q, gamma);
  for (let i = 1; i <= gamma; i++) {
    const P = o.target(i);
    const p = tokenAt(P, o.drafts[i - 1], i);
    const scan = rules.scanAcceptance([p], [o.q[i - 1]], [o.rng.accept(i)]);
    if (scan.rejectedAt !== null) return { accepted: i - 1, rejectedAt: i, bonus: null, rejectedRow: P };
  }
  const bonus = o.bonus === false ? null : sampleBonus(o.target(gamma + 1), o.rng.bonus(gamma));
  return { accepted: gamma, rejectedAt: null, bonus, rejectedRow: null };
}

/** DSSD device side, dense P_j: a draw from norm(max(0, P_j − Q_j)) with the Q_j the draft was sampled from. */
export function resampleRejected(
  Pj: ArrayLike<number>,
  Qj: ArrayLike<number>,
  j: number,
  rng: RoundRng,
  rules: RoundRules = EXACT_RULES,
): number {
  return rules.sampleResidual(Pj, Qj, rng.residual(j));
}

/** DSSD edge side, candidates codec: K i.i.d. draws from P_j with the schedule's candidate uniforms. */
export function drawRejectionCandidates(
  Pj: ArrayLike<number>,
  K: number,
  j: number,
  rng: RoundRng,
): CandidateDraws {
  return drawCandidates(Pj, K, rng.candidateUniforms(j, K));
}

/**
 * DSSD device side, candidates codec: the first candidate accepted with probability (P − Q)⁺/P and the trial it
 * took (1-based: what the edge's candidate-count chooser learns from), or null when all K fail (the device then
 * asks for P_j in full and calls resampleRejected).
 */
export function resolveRejectionCandidates(
  c: { ids: ArrayLike<number>; probs: ArrayLike<number> },
  Qj: ArrayLike<number>,
  j: number,
  rng: RoundRng,
): { token: number; trials: number } | null {
  const res = resolveCandidates(c.ids, c.probs, Qj, rng.candidateAcceptUniforms(j, c.ids.length));
  return res.fallback ? null : { token: res.token, trials: res.index + 1 };
}

/** DSD decision: the edge holds every Q_i and returns the resampled or bonus token itself. */
export interface DsdVerdict {
  accepted: number;
  rejectedAt: number | null;
  /** Resampled token at rejectedAt, or the bonus token when rejectedAt is null. */
  token: number;
}

export interface DsdRoundInput {
  /** P_1..P_{γ+1}, processed on demand. */
  target: Rows;
  /** Q_1..Q_γ as uplinked. */
  draft: Rows;
  drafts: ArrayLike<number>;
  rng: RoundRng;
  rules?: RoundRules;
}

/**
 * DSD baseline (edge side with the full Q's): the same scan, residual and bonus with the same uniforms as DSSD,
 * so for a given seed DSD and DSSD emit identical tokens.
 */
export function verifyDsdRound(o: DsdRoundInput): DsdVerdict {
  const rules = o.rules ?? EXACT_RULES;
  const gamma = o.drafts.length;
  for (let i = 1; i <= gamma; i++) {
    const P = o.target(i);
    const Q = o.draft(i);
    if (P.length !== Q.length) {
      throw new KernelError(KernelErrorCode.LengthMismatch, `P_${i} and Q_${i}: ${P.length} vs ${Q.length}`);
    }
    const x = o.drafts[i - 1];
    const scan = rules.scanAcceptance([tokenAt(P, x, i)], [tokenAt(Q, x, i)], [o.rng.accept(i)]);
    if (scan.rejectedAt !== null) {
      return { accepted: i - 1, rejectedAt: i, token: resampleRejected(P, Q, i, o.rng, rules) };
    }
  }
  return { accepted: gamma, rejectedAt: null, token: sampleBonus(o.target(gamma + 1), o.rng.bonus(gamma)) };
}

function checkRows(rows: ArrayLike<ArrayLike<number>>, expected: number, what: string): void {
  if (rows.length !== expected) {
    throw new KernelError(
      KernelErrorCode.LengthMismatch,
      `${what} needs ${expected} rows, got ${rows.length}`,
    );
  }
}

/** verifyDssdRound over materialised rows P_1..P_{γ+1} (tests and tools). */
export function verifyDssd(
  P: ArrayLike<ArrayLike<number>>,
  drafts: ArrayLike<number>,
  q: ArrayLike<number>,
  rng: RoundRng,
): DssdVerdict {
  checkRows(P, drafts.length + 1, 'P');
  return verifyDssdRound({ target: (i) => P[i - 1], drafts, q, rng });
}

/** verifyDsdRound over materialised rows P_1..P_{γ+1} and Q_1..Q_γ (tests and tools). */
export function verifyDsd(
  P: ArrayLike<ArrayLike<number>>,
  Q: ArrayLike<ArrayLike<number>>,
  drafts: ArrayLike<number>,
  rng: RoundRng,
): DsdVerdict {
  checkRows(P, drafts.length + 1, 'P');
  checkRows(Q, drafts.length, 'Q');
  return verifyDsdRound({ target: (i) => P[i - 1], draft: (i) => Q[i - 1], drafts, rng });
}
