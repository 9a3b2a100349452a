/**
 * The edge's half of a round, from the target's logits to the verdict frame: processing P_i lazily and the
 * kernel's round functions (verifyDssdRound, drawRejectionCandidates, verifyDsdRound) — the same functions the
 * kernel's exact-enumeration tests prove. The session applies the returned history and cache changes.
 */
import { HEADER_SIZE, encodedSize, fullResponseFrameSize, type Frame, type RejectionBody } from '@dssd/codec';
import {
  drawRejectionCandidates,
  type CandidateCountChooser,
  processLogits,
  type PipelineVerifier,
  verifyDsdRound,
  verifyDssdRound,
  type RoundOutcome,
  type RoundRng,
  type RoundRules,
} from '@dssd/kernel';
import { ProtocolError, ProtocolErrorCode } from '../errors.js';
import { CANDIDATES, type SessionSettings } from '../settings.js';

/** P_j kept for a device whose candidates all failed (it asks for P_j in full). */
export interface HeldDistribution {
  j: number;
  round: number;
  p: Float32Array;
}

/** What the session applies after a verify pass. */
export interface EdgeRoundResult {
  frame: Frame;
  /** Drafts accepted (j − 1, or γ). */
  accepted: number;
  /** Tokens both sides now agree on, appended to the history. */
  appended: number[];
  /** Keep this many of the round's scored tokens in the target cache (null: keep all). */
  truncateTo: number | null;
  held: HeldDistribution | null;
  outcome: RoundOutcome;
}

/**
 * How the candidate count is chosen: `chooser` (candidates: 'auto') learns from the trials devices report; the
 * last K sent is kept so that the next report can be read against it.
 */
export interface CandidateState {
  chooser: CandidateCountChooser | null;
  lastK: number | null;
}

/**
 * DSSD: `rows` are the target's logits from the last history token on (γ+1 rows). `cand` sizes K for the
 * candidates codec.
 */
export function verifyDraft(o: {
  rows: Float32Array[];
  ids: number[];
  q: number[];
  settings: SessionSettings;
  rng: RoundRng;
  round: number;
  cand: CandidateState;
  rules?: RoundRules;
}): EdgeRoundResult {
  const s = o.settings;
  const gamma = o.ids.length;
  const v = verifyDssdRound({
    target: (i) => processLogits(o.rows[i - 1], s.sampling),
    drafts: o.ids,
    q: o.q,
    rng: o.rng,
    rules: o.rules,
  });
  if (v.rejectedAt === null) {
    return {
      frame: { kind: 'verdict', outcome: 'accept', j: gamma + 1, token: v.bonus! },
      accepted: gamma,
      appended: [...o.ids, v.bonus!],
      truncateTo: null,
      held: null,
      outcome: { bonus: true },
    };
  }
  return rejection(o, v.rejectedAt, v.rejectedRow as Float32Array);
}

/**
 * Pipelined DSSD block (see the kernel's PipelineVerifier): `rows` are P_1..P_g of the block (the edge fed
 * the uncached tokens and every draft but the last). Returns null for a stale block, which changes nothing.
 */
export function verifyBlock(o: {
  verifier: PipelineVerifier;
  rows: Float32Array[];
  ids: number[];
  q: number[];
  carriesResample: boolean;
  settings: SessionSettings;
  rng: (index: number) => RoundRng;
  round: number;
  cand: CandidateState;
}): EdgeRoundResult | null {
  const v = o.verifier.verify(
    { index: o.round, carriesResample: o.carriesResample, drafts: o.ids, q: o.q },
    (i) => processLogits(o.rows[i - 1], o.settings.sampling),
    o.rng,
  );
  if (v.stale) return null;
  if (v.rejectedAt === null) {
    const g = o.ids.length;
    return {
      frame: { kind: 'verdict', outcome: 'accepted', j: g + 1 },
      accepted: g,
      appended: [...o.ids],
      truncateTo: null,
      held: null,
      outcome: { bonus: false },
    };
  }
  return rejection({ ...o, rng: o.rng(o.round) }, v.rejectedAt, v.rejectedRow as Float32Array);
}

/** The reject verdict at j: P_j in the session's codec, or K candidates drawn from it (P_j held for a fall-back). */
function rejection(
  o: {
    ids: number[];
    q: number[];
    settings: SessionSettings;
    rng: RoundRng;
    round: number;
    cand: CandidateState;
  },
  j: number,
  Pj: Float32Array,
): EdgeRoundResult {
  const s = o.settings;
  let body: RejectionBody;
  let held: HeldDistribution | null = null;
  const plan =
    s.codec !== 'candidates'
      ? null
      : s.candidates !== 'auto' || !o.cand.chooser
        ? { mode: 'candidates' as const, K: s.candidates === 'auto' ? CANDIDATES.initialK : s.candidates }
        : o.cand.chooser.plan(
            FULL_REQUEST_BYTES + fullResponseFrameSize(Pj) + CANDIDATES.fallbackRoundTripBytes,
            encodedSize(Pj, 'auto'),
          );
  if (plan?.mode === 'candidates') {
    const c = drawRejectionCandidates(Pj, plan.K, j, o.rng);
    body = { encoding: 'candidates', ids: c.ids, probs: c.probs };
    held = { j, round: o.round, p: Pj };
    o.cand.lastK = plan.K;
  } else {
    // P_j itself: the session's codec, or (candidates codec) its smallest exact encoding when that is cheaper.
    body = { encoding: s.codec === 'candidates' ? 'auto' : s.codec, p: Pj, topK: s.topK };
    o.cand.lastK = null;
  }
  return {
    frame: { kind: 'verdict', outcome: 'reject', j, body },
    accepted: j - 1,
    appended: o.ids.slice(0, j - 1),
    truncateTo: j - 1,
    held,
    outcome: { resampled: true, fullRequest: held === null },
  };
}

/** DSD: the device uplinked every Q_i; the edge resamples (or samples the bonus) itself. */
export function verifyDsdDraft(o: {
  rows: Float32Array[];
  ids: number[];
  dists: Float32Array[];
  settings: SessionSettings;
  rng: RoundRng;
  rules?: RoundRules;
}): EdgeRoundResult {
  const gamma = o.ids.length;
  for (let i = 1; i <= gamma; i++) {
    if (!(o.dists[i - 1][o.ids[i - 1]] > 0))
      throw new ProtocolError(ProtocolErrorCode.BadFrame, `Q_${i}(x_${i}) is not positive`);
  }
  const v = verifyDsdRound({
    target: (i) => processLogits(o.rows[i - 1], o.settings.sampling),
    draft: (i) => o.dists[i - 1],
    drafts: o.ids,
    rng: o.rng,
    rules: o.rules,
  });
  if (v.rejectedAt === null) {
    return {
      frame: { kind: 'verdict', outcome: 'accept', j: gamma + 1, token: v.token },
      accepted: gamma,
      appended: [...o.ids, v.token],
      truncateTo: null,
      held: null,
      outcome: { bonus: true },
    };
  }
  const j = v.rejectedAt;
  return {
    frame: { kind: 'verdict', outcome: 'resample', j, token: v.token },
    accepted: j - 1,
    appended: [...o.ids.slice(0, j - 1), v.token],
    truncateTo: j - 1,
    held: null,
    outcome: { resampled: true },
  };
}

/** A fullRequest frame: the header and j. */
const FULL_REQUEST_BYTES = HEADER_SIZE + 1;

/** Reads a device's candidate-trials report against the K last sent (t ≥ 1: accepted at trial t; 0: fell back). */
export function recordCandidateReport(cand: CandidateState, trials: number): void {
  const K = cand.lastK;
  if (K === null) {
    throw new ProtocolError(ProtocolErrorCode.BadFrame, 'a candidate-trials report with no candidates sent');
  }
  if (trials > K)
    throw new ProtocolError(ProtocolErrorCode.BadFrame, `trial ${trials} of only ${K} candidates`);
  cand.lastK = null;
  if (!cand.chooser) return;
  if (trials === 0) cand.chooser.fellBack(K);
  else cand.chooser.succeeded(trials, K);
}
