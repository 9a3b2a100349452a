/**
 * Exact laws of the production round functions (round.ts), found from their behaviour alone.
 *
 * A round's outcome is a function of the uniforms it asks its RoundRng for. Each uniform feeds one decision (a
 * threshold test or an inverse-CDF lookup), so with every earlier uniform fixed the outcome is piecewise constant
 * in the next one, each outcome on one interval. ScriptedRng replays fixed values and hands out a *poison* value
 * (an integer >= 2) for the others; the kernel validates every uniform where it uses it, so a run either returns
 * or throws InvalidUniform naming the first unfixed uniform it needed. The breakpoints of that uniform are then
 * located on the 2^-53 grid the production uniforms live on (bisection over the grid index, or a cheaper check
 * of breakpoints seen before for the same key), and the enumeration recurses depth-first into every piece with
 * weight (piece length)/2^53. No formula of the kernel enters: a planted bug moves the breakpoints and the law.
 *
 * What the method does assume, and how far it is checked:
 * - each outcome of a split uniform occupies one interval (checked at both ends and the middle of every piece);
 * - the kernel rejects an out-of-range uniform where it uses it (all of round.ts goes through assertUniform);
 * - candidates: candidate k's id depends on its own uniform only and trial k on candidates <= k, so the edge's
 *   bulk draw can run with unsplit candidates at 0 and candidate k is split just before trial k (without this
 *   the enumeration would branch |V|^K ways before the first trial);
 * - the edge's verdict and the device's resampling use disjoint uniforms (checked), so they compose as laws.
 */
import {
  EXACT_RULES,
  KernelError,
  KernelErrorCode,
  RoundRng,
  drawRejectionCandidates,
  resampleRejected,
  resolveRejectionCandidates,
  verifyDsdRound,
  verifyDssdRound,
} from '../src/index.js';
import type { RoundRules } from '../src/index.js';
import type { Dist, Prefix, ToyPair } from './helpers.js';

/** The production uniforms are k/2^53 for integer k in [0, 2^53). */
const ONE = 2 ** 53;
/** Poison for the n-th requested unfixed key: POISON + n, outside [0, 1) so the kernel throws on use. */
const POISON = 2;

export type Key = string;

/** How a round's uniforms are split: the request order by default, adjusted for bulk requests. */
export interface SplitPolicy {
  /**
   * Keys handed out as 0 while unfixed instead of poison, because they are requested and consumed in bulk
   * before the decisions that make them matter (the edge draws all K candidates before the device tries any).
   */
  deferred?: (key: Key) => boolean;
  /** A key that must be fixed before `key` is split (the candidate draw before its device-side trial). */
  before?: (key: Key) => Key | undefined;
}

/** RoundRng that replays fixed uniforms and poisons the rest; remembers the keys in the order requested. */
class ScriptedRng extends RoundRng {
  readonly requested: Key[] = [];

  constructor(
    private readonly fixed: ReadonlyMap<Key, number>,
    private readonly deferred: (key: Key) => boolean,
    private readonly forbidden: ReadonlySet<Key>,
  ) {
    super(0, 0, 0);
  }

  private get(key: Key): number {
    // A device stage must not reuse an edge-stage uniform: that would correlate decisions the law treats as
    // independent, and enumerating the stages apart would hide it.
    if (this.forbidden.has(key)) throw new Error(`uniform ${key} reused across stages`);
    let n = this.requested.indexOf(key);
    if (n < 0) n = this.requested.push(key) - 1;
    const v = this.fixed.get(key);
    if (v !== undefined) return v;
    return this.deferred(key) ? 0 : POISON + n;
  }

  override draft(i: number): number {
    return this.get(`draft:${i}`);
  }
  override accept(i: number): number {
    return this.get(`accept:${i}`);
  }
  override residual(j: number): number {
    return this.get(`residual:${j}`);
  }
  override bonus(gamma: number): number {
    return this.get(`bonus:${gamma}`);
  }
  override candidate(j: number, k: number): number {
    return this.get(`candidate:${j}:${k}`);
  }
  override candidateAccept(j: number, k: number): number {
    return this.get(`candidateAccept:${j}:${k}`);
  }

  /** The key whose poison the error reports (assertUniform ends its message with `got ${u}`), if any. */
  poisoned(e: unknown): Key | undefined {
    if (!(e instanceof KernelError) || e.code !== KernelErrorCode.InvalidUniform) return undefined;
    const m = /got (\d+)$/.exec(e.message);
    return m ? this.requested[Number(m[1]) - POISON] : undefined;
  }
}

/**
 * Production calls of one round (or one stage of it): returns a label of the outcome (the emitted tokens);
 * `note` records intermediate outputs, e.g. the candidate ids the edge sends.
 */
export type RoundRun = (rng: RoundRng, note: (s: string) => void) => string;

interface Observation {
  /** Everything observable: the outcome or the uniform needed next, notes, and the keys requested. */
  sig: string;
  outcome: string | null;
  need: Key | null;
  requested: Key[];
}

function observe(
  run: RoundRun,
  fixed: ReadonlyMap<Key, number>,
  deferred: (key: Key) => boolean,
  forbidden: ReadonlySet<Key>,
): Observation {
  const rng = new ScriptedRng(fixed, deferred, forbidden);
  const notes: string[] = [];
  const note = (s: string) => void notes.push(s);
  const tail = () => `${notes.join(';')}|${rng.requested.join(' ')}`;
  try {
    const outcome = run(rng, note);
    return { sig: `=${outcome}|${tail()}`, outcome, need: null, requested: rng.requested };
  } catch (e) {
    const need = rng.poisoned(e);
    if (need === undefined) throw e;
    return { sig: `?${need}|${tail()}`, outcome: null, need, requested: rng.requested };
  }
}

interface Piece {
  lo: number;
  hi: number;
  sig: string;
}

/** Counts of the work done, for the report. */
export const enumStats = { runs: 0, bisections: 0, hintHits: 0 };

/**
 * Pieces [lo, hi) of the grid index within `range` on which obs is constant, assuming each value of obs occupies
 * one interval. Tries breakpoint lists seen before for the same key first: under that assumption a list is right
 * iff obs is equal at both ends of every piece and differs between pieces (2 runs per piece instead of 53 per
 * breakpoint).
 */
function split(obs: (k: number) => string, hints: number[][], range: Interval = [0, ONE]): Piece[] {
  const [start, end] = range;
  for (const h of hints) {
    const bounds = [start, ...h.filter((b) => b > start && b < end), end];
    const pieces: Piece[] = [];
    const seen = new Set<string>();
    for (let p = 0; p + 1 < bounds.length; p++) {
      const sig = obs(bounds[p]);
      if (seen.has(sig) || obs(bounds[p + 1] - 1) !== sig) break;
      seen.add(sig);
      pieces.push({ lo: bounds[p], hi: bounds[p + 1], sig });
    }
    if (pieces.length === bounds.length - 1) {
      enumStats.hintHits++;
      return pieces;
    }
  }
  enumStats.bisections++;
  const top = end - 1;
  const sigTop = obs(top);
  const pieces: Piece[] = [];
  const seen = new Set<string>();
  for (let lo = start; ;) {
    const sig = obs(lo);
    if (seen.has(sig)) throw new Error(`outcome ${sig} on two intervals`);
    seen.add(sig);
    if (sig === sigTop) {
      pieces.push({ lo, hi: end, sig });
      break;
    }
    // Invariant: obs(a) === sig, obs(b) !== sig; ends at the first index b of the next piece.
    let a = lo;
    let b = top;
    while (b - a > 1) {
      const m = a + Math.floor((b - a) / 2);
      if (obs(m) === sig) a = m;
      else b = m;
    }
    pieces.push({ lo, hi: b, sig });
    lo = b;
  }
  // Cheap guard on the one-interval premise: the middle of every piece agrees with its ends.
  for (const p of pieces) {
    if (obs(p.lo + Math.floor((p.hi - 1 - p.lo) / 2)) !== p.sig)
      throw new Error(`piece ${p.sig} is not an interval`);
  }
  return pieces;
}

/**
 * Breakpoint lists found before, per purpose (the key without its indices), most recent first: sibling drafts
 * share P_j and Q_j, and the K candidates of one rejection share P_j's CDF. A wrong hint costs a run or two.
 */
export type Hints = Map<string, number[][]>;

const purpose = (key: Key) => key.slice(0, key.indexOf(':'));

function remember(hints: Hints, key: Key, pieces: Piece[]): void {
  const list = pieces.slice(1).map((p) => p.lo);
  const known = hints.get(purpose(key)) ?? [];
  const same = (h: number[]) => h.length === list.length && h.every((b, i) => b === list[i]);
  hints.set(purpose(key), [list, ...known.filter((h) => !same(h))].slice(0, 6));
}

/** Grid indices [lo, hi) a uniform is known to lie in: its value is k/2^53 for an integer k in the range. */
export type Interval = readonly [number, number];

/** One path of the enumeration: its outcome, mass, and the piece each uniform it split fell in. */
export interface Leaf {
  outcome: string;
  mass: number;
  fixed: ReadonlyMap<Key, Interval>;
}

export interface RoundLaw {
  /** Outcome label → probability. */
  law: Map<string, number>;
  /** Every key any run requested (a later stage may not reuse them). */
  keys: Set<Key>;
  /** Every path, for stages composed with what an earlier stage learned about a uniform (see `given`). */
  leaves: Leaf[];
}

/**
 * Exact law of a run's outcome, from its behaviour alone. `given`: uniforms an earlier stage already split, each
 * known to lie in its interval and otherwise uniform there (the law conditioned on the earlier stage's path), so
 * a stage that reuses an earlier uniform is enumerated as the code would really behave.
 */
export function roundLaw(
  run: RoundRun,
  policy: SplitPolicy = {},
  hints: Hints = new Map(),
  forbidden: ReadonlySet<Key> = new Set(),
  given: ReadonlyMap<Key, Interval> = new Map(),
): RoundLaw {
  const deferred = policy.deferred ?? (() => false);
  const law = new Map<string, number>();
  const keys = new Set<Key>();
  const leaves: Leaf[] = [];
  const path = new Map<Key, Interval>();
  const look = (fixed: ReadonlyMap<Key, number>) => {
    const o = observe(run, fixed, deferred, forbidden);
    for (const k of o.requested) keys.add(k);
    enumStats.runs++;
    return o;
  };
  const fixed = new Map<Key, number>();
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0; // every probe that needs a new uniform throws; stack traces would dominate the cost
  try {
    const visit = (first: Observation, mass: number) => {
      if (first.outcome !== null) {
        law.set(first.outcome, (law.get(first.outcome) ?? 0) + mass);
        leaves.push({ outcome: first.outcome, mass, fixed: new Map(path) });
        return;
      }
      let key = first.need as Key;
      for (let pre = policy.before?.(key); pre !== undefined && !fixed.has(pre); pre = policy.before?.(pre)) {
        key = pre;
      }
      const seen = new Map<number, Observation>();
      const at = (k: number): Observation => {
        let o = seen.get(k);
        if (!o) {
          fixed.set(key, k / ONE);
          o = look(fixed);
          seen.set(k, o);
        }
        return o;
      };
      const range = given.get(key) ?? ([0, ONE] as const);
      const pieces = split((k) => at(k).sig, hints.get(purpose(key)) ?? [], range);
      remember(hints, key, pieces);
      for (const p of pieces) {
        fixed.set(key, p.lo / ONE);
        path.set(key, [p.lo, p.hi]);
        visit(at(p.lo), mass * ((p.hi - p.lo) / (range[1] - range[0])));
      }
      fixed.delete(key);
      path.delete(key);
    };
    visit(look(fixed), 1);
  } finally {
    Error.stackTraceLimit = limit;
  }
  return { law, keys, leaves };
}

// ---------------------------------------------------------------------------------------------------------------
// Rounds as the edge and the device run them, composed until N tokens are emitted.
// ---------------------------------------------------------------------------------------------------------------

export interface ProductionMode {
  /** dssd: dense P_j residual; candidates: K candidates, dense fall-back on null; dsd: verifyDsdRound. */
  kind: 'dssd' | 'candidates' | 'dsd';
  K?: number;
  /** false: a fully accepted block emits only its γ drafts (pipelined drafting). */
  bonus?: boolean;
  rules?: RoundRules;
  /** The Q uplinked and used for the residual; by default the Q the draft was sampled from (planted bug). */
  verifyQ?: (prefix: Prefix) => Dist;
}

const candidatePolicy: SplitPolicy = {
  deferred: (key) => key.startsWith('candidate:'),
  before: (key) =>
    key.startsWith('candidateAccept:') ? key.replace('candidateAccept:', 'candidate:') : undefined,
};

const label = (tokens: ArrayLike<number>) => Array.from(tokens).join(',');

/**
 * The edge's call (verifyDssdRound, or verifyDsdRound which resamples itself): outcome = emitted tokens, or
 * `r<j>` for a DSSD rejection at j whose P_j is stored in `rows` for the device stage.
 */
function edgeRound(
  mode: ProductionMode,
  P: Dist[],
  Q: Dist[],
  drafts: number[],
  rows: Map<number, ArrayLike<number>>,
): RoundRun {
  const rules = mode.rules ?? EXACT_RULES;
  const target = (i: number) => P[i - 1];
  if (mode.kind === 'dsd') {
    return (rng) => {
      const v = verifyDsdRound({ target, draft: (i) => Q[i - 1], drafts, rng, rules });
      return label([...drafts.slice(0, v.accepted), v.token]);
    };
  }
  const q = drafts.map((x, i) => Q[i][x]);
  return (rng) => {
    const v = verifyDssdRound({ target, drafts, q, rng, bonus: mode.bonus, rules });
    if (v.rejectedAt === null) return label(v.bonus === null ? drafts : [...drafts, v.bonus]);
    if (v.accepted !== v.rejectedAt - 1 || !v.rejectedRow)
      throw new Error(`bad verdict ${JSON.stringify(v)}`);
    rows.set(v.rejectedAt, v.rejectedRow);
    return `r${v.rejectedAt}`;
  };
}

/** The device's side after a rejection at j (candidates first when mode.K is set): outcome = the token. */
function deviceStage(mode: ProductionMode, Pj: ArrayLike<number>, Qj: Dist, j: number): RoundRun {
  const rules = mode.rules ?? EXACT_RULES;
  return (rng, note) => {
    if (mode.kind === 'candidates') {
      const c = drawRejectionCandidates(Pj, mode.K ?? 1, j, rng);
      note(`${label(c.ids)}:${label(c.probs)}`);
      const y = resolveRejectionCandidates(c, Qj, j, rng);
      if (y !== null) return String(y.token);
    }
    return String(resampleRejected(Pj, Qj, j, rng, rules));
  };
}

/**
 * Exact law of the first N tokens emitted by production rounds with draft length γ: drafts enumerated from Q
 * (weight Q(x)), each round's law from roundLaw, rounds composed until N tokens are out. The edge's verdict
 * and the device's resampling use disjoint uniforms (checked), so a rejection's law is the edge stage's mass
 * times the device stage's law, which depends only on (P_j, Q_j, j) and is enumerated once per distinct input.
 */
export function productionLaw(
  model: ToyPair,
  N: number,
  gamma: number,
  mode: ProductionMode,
): Map<string, number> {
  const final = new Map<string, number>();
  const pending: Map<string, number>[] = Array.from({ length: N }, () => new Map());
  pending[0].set('', 1);
  const policy = mode.kind === 'candidates' ? candidatePolicy : {};
  const hints: Hints = new Map();
  const device = new Map<string, Map<string, number>>();
  const add = (law: Map<string, number>, key: string, mass: number) =>
    law.set(key, (law.get(key) ?? 0) + mass);
  const emit = (start: number[], tokens: number[], mass: number) => {
    if (tokens.length === 0) throw new Error('a round emitted nothing');
    const next = [...start, ...tokens].slice(0, N);
    add(next.length >= N ? final : pending[next.length], next.join(','), mass);
  };
  for (let len = 0; len < N; len++) {
    for (const [key, mass] of pending[len]) {
      const start = key === '' ? [] : key.split(',').map(Number);
      const rec = (drafts: number[], Qs: Dist[], w: number) => {
        if (drafts.length < gamma) {
          const Q = model.draft([...start, ...drafts]);
          for (let x = 0; x < model.V; x++) if (Q[x] > 0) rec([...drafts, x], [...Qs, Q], w * Q[x]);
          return;
        }
        const ctx = (i: number) => [...start, ...drafts.slice(0, i)];
        const P = Array.from({ length: gamma + 1 }, (_, i) => model.target(ctx(i)));
        const Qv = mode.verifyQ ? Qs.map((_, i) => (mode.verifyQ as (p: Prefix) => Dist)(ctx(i))) : Qs;
        const rows = new Map<number, ArrayLike<number>>();
        const edge = roundLaw(edgeRound(mode, P, Qv, drafts, rows), {}, hints);
        for (const [outcome, m] of edge.law) {
          if (!outcome.startsWith('r')) {
            emit(start, outcome.split(',').map(Number), mass * w * m);
            continue;
          }
          const j = Number(outcome.slice(1));
          const Pj = rows.get(j) as ArrayLike<number>;
          const id = `${j}|${label(Pj)}|${label(Qv[j - 1])}|${[...edge.keys].join(' ')}`;
          let law = device.get(id);
          if (!law) {
            law = roundLaw(deviceStage(mode, Pj, Qv[j - 1], j), policy, hints, edge.keys).law;
            device.set(id, law);
          }
          for (const [y, m2] of law) emit(start, [...drafts.slice(0, j - 1), Number(y)], mass * w * m * m2);
        }
      };
      rec([], [], 1);
    }
  }
  return final;
}
