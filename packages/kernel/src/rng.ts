/**
 * Counter-based randomness: Philox4x32-10 (Salmon et al., Random123) keyed by the session seed.
 *
 * Every uniform is a pure function of (seed, turn, round, position, purpose, index), so the device and the edge
 * never need to share RNG state, a replayed round draws the same numbers, and two protocols that make the same
 * decision draw the same uniform for it. Key = the 64-bit seed as [lo 32 bits, hi 32 bits]; counter =
 * [turn, round, position, purpose << 24 | index]. Positions are 1-based as in the paper.
 *
 * Key schedule (t = turn, r = round within the turn, γ = draft length of that round):
 * - draft token i (1..γ):                        (t, r, i, Draft)            — device
 * - acceptance test of position i:               (t, r, i, Accept)           — edge
 * - residual at the first rejected position j:   (t, r, j, Residual)         — whoever samples it: the device in
 *   DSSD, the edge in DSD, so a DSD run and a DSSD run with the same seed emit the same tokens
 * - bonus token after γ acceptances:             (t, r, γ+1, Bonus)          — edge
 * - candidate k (0-based) for the residual at j: (t, r, j, Candidate, k)     — edge
 * - device-side trial of candidate k:            (t, r, j, CandidateAccept, k)
 * - fall-back residual after all K candidates fail: (t, r, j, Residual)     — device, with the full P_j
 * - edge-only AR token n of turn t:              (t, n, 0, Ar)
 */
import { KernelError, KernelErrorCode } from './errors.js';

/** What a uniform is used for; the value enters the counter, so it must never change. */
export enum Purpose {
  Draft = 1,
  Accept = 2,
  Residual = 3,
  Bonus = 4,
  Candidate = 5,
  CandidateAccept = 6,
  Ar = 7,
}

const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32, via 16-bit halves (every partial sum stays below 2^53). */
function mulhi(a: number, b: number): number {
  const aH = a >>> 16;
  const aL = a & 0xffff;
  const bH = b >>> 16;
  const bL = b & 0xffff;
  const mid = aH * bL + aL * bH + ((aL * bL) >>> 16);
  return (aH * bH + Math.floor(mid / 65536)) >>> 0;
}

const scratch = new Uint32Array(4);

function philoxInto(
  c0: number,
  c1: number,
  c2: number,
  c3: number,
  k0: number,
  k1: number,
  out: Uint32Array,
) {
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhi(M0, c0);
    const lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhi(M1, c2);
    const lo1 = Math.imul(M1, c2) >>> 0;
    c0 = (hi1 ^ c1 ^ k0) >>> 0;
    c1 = lo1;
    c2 = (hi0 ^ c3 ^ k1) >>> 0;
    c3 = lo0;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

function checkWord(v: number, what: string, limit = 0xffffffff): void {
  if (!Number.isInteger(v) || v < 0 || v > limit) {
    throw new KernelError(
      KernelErrorCode.InvalidRngInput,
      `${what} must be an integer in [0, ${limit}], got ${v}`,
    );
  }
}

/** Raw Philox4x32-10 block: four uint32 counter words and two uint32 key words → four uint32 outputs. */
export function philox4x32(counter: ArrayLike<number>, key: ArrayLike<number>): Uint32Array {
  if (counter.length !== 4 || key.length !== 2) {
    throw new KernelError(
      KernelErrorCode.InvalidRngInput,
      'philox4x32 needs 4 counter words and 2 key words',
    );
  }
  for (let i = 0; i < 4; i++) checkWord(counter[i], `counter[${i}]`);
  for (let i = 0; i < 2; i++) checkWord(key[i], `key[${i}]`);
  const out = new Uint32Array(4);
  philoxInto(counter[0], counter[1], counter[2], counter[3], key[0], key[1], out);
  return out;
}

/** Throws KernelError(InvalidRngInput) unless seed is a non-negative safe integer. */
export function validateSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new KernelError(
      KernelErrorCode.InvalidRngInput,
      `seed must be a non-negative safe integer, got ${seed}`,
    );
  }
}

/**
 * The uniform in [0, 1) for one decision: 53 bits of the Philox output (27 from word 0, 26 from word 1) / 2^53.
 * `index` < 2^24; the other counter words < 2^32.
 */
export function uniform(
  seed: number,
  turn: number,
  round: number,
  position: number,
  purpose: Purpose,
  index = 0,
): number {
  validateSeed(seed);
  checkWord(turn, 'turn');
  checkWord(round, 'round');
  checkWord(position, 'position');
  checkWord(purpose, 'purpose', 255);
  checkWord(index, 'index', 0xffffff);
  philoxInto(
    turn,
    round,
    position,
    ((purpose << 24) | index) >>> 0,
    seed % 2 ** 32,
    Math.floor(seed / 2 ** 32),
    scratch,
  );
  return ((scratch[0] >>> 5) * 67108864 + (scratch[1] >>> 6)) / 9007199254740992;
}

/** The named draws of one round (turn t, round r): the key schedule of this module without hand-built counters. */
export class RoundRng {
  constructor(
    readonly seed: number,
    readonly turn: number,
    readonly round: number,
  ) {}

  /** Draft token i (1-based), device. */
  draft(i: number): number {
    return uniform(this.seed, this.turn, this.round, i, Purpose.Draft);
  }
  /** Acceptance test of position i (1-based), edge. */
  accept(i: number): number {
    return uniform(this.seed, this.turn, this.round, i, Purpose.Accept);
  }
  /** The γ acceptance uniforms for positions 1..γ. */
  acceptUniforms(gamma: number): Float64Array {
    const out = new Float64Array(gamma);
    for (let i = 0; i < gamma; i++) out[i] = this.accept(i + 1);
    return out;
  }
  /** Residual at the first rejected position j (also the fall-back after all candidates fail). */
  residual(j: number): number {
    return uniform(this.seed, this.turn, this.round, j, Purpose.Residual);
  }
  /** Bonus token after all γ drafts were accepted (position γ+1). */
  bonus(gamma: number): number {
    return uniform(this.seed, this.turn, this.round, gamma + 1, Purpose.Bonus);
  }
  /** Candidate draw k (0-based) for the residual at position j, edge. */
  candidate(j: number, k: number): number {
    return uniform(this.seed, this.turn, this.round, j, Purpose.Candidate, k);
  }
  /** K candidate draws for position j. */
  candidateUniforms(j: number, count: number): Float64Array {
    const out = new Float64Array(count);
    for (let k = 0; k < count; k++) out[k] = this.candidate(j, k);
    return out;
  }
  /** Device-side trial of candidate k (0-based) at position j. */
  candidateAccept(j: number, k: number): number {
    return uniform(this.seed, this.turn, this.round, j, Purpose.CandidateAccept, k);
  }
  /** K candidate trial uniforms for position j. */
  candidateAcceptUniforms(j: number, count: number): Float64Array {
    const out = new Float64Array(count);
    for (let k = 0; k < count; k++) out[k] = this.candidateAccept(j, k);
    return out;
  }
}

/** Holds the session seed and hands out the named draws of the key schedule. */
export class SessionRng {
  readonly seed: number;

  constructor(seed: number) {
    validateSeed(seed);
    this.seed = seed;
  }

  /** The draws of round `round` of turn `turn`. */
  round(turn: number, round: number): RoundRng {
    checkWord(turn, 'turn');
    checkWord(round, 'round');
    return new RoundRng(this.seed, turn, round);
  }
  /** Draft token i (1-based) of round r in turn t. */
  draft(turn: number, round: number, i: number): number {
    return uniform(this.seed, turn, round, i, Purpose.Draft);
  }
  /** Edge acceptance test of position i. */
  accept(turn: number, round: number, i: number): number {
    return uniform(this.seed, turn, round, i, Purpose.Accept);
  }
  /** Residual at position j. */
  residual(turn: number, round: number, j: number): number {
    return uniform(this.seed, turn, round, j, Purpose.Residual);
  }
  /** Bonus token at position γ+1. */
  bonus(turn: number, round: number, gamma: number): number {
    return uniform(this.seed, turn, round, gamma + 1, Purpose.Bonus);
  }
  /** Candidate k for the residual at position j. */
  candidate(turn: number, round: number, j: number, k: number): number {
    return uniform(this.seed, turn, round, j, Purpose.Candidate, k);
  }
  /** Device-side trial of candidate k at position j. */
  candidateAccept(turn: number, round: number, j: number, k: number): number {
    return uniform(this.seed, turn, round, j, Purpose.CandidateAccept, k);
  }
  /** Edge-only autoregressive token n of turn t. */
  ar(turn: number, n: number): number {
    return uniform(this.seed, turn, n, 0, Purpose.Ar);
  }
}
