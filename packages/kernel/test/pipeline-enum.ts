/**
 * Exact law of the pipelined schedule as the edge (PipelineVerifier) and the device (resampleRejected) run it.
 * Each stage's law comes from round-enum.ts (breakpoints found from the functions' behaviour); the stages are
 * composed by a tick-by-tick simulation of both sides:
 *
 * - the device drafts one token per tick from its Q (every draft enumerated with weight Q(x)), continuing
 *   speculatively on its own unverified drafts, while at most W drafts are unverified (sent or being drafted);
 *   a block is sent when it holds g drafts, or at once after an EOS-like token when early stops are on;
 * - every block sent is delivered in order; the edge handles block s at tick sentAt(s) + lat (the timing
 *   script, cycled over sends), so 0, 1 or 2 further blocks have been sent when its verdict arrives, and blocks
 *   drafted on top of a rejected prefix really reach the verifier, which must drop them;
 * - a verdict reaches the device at once: it commits the accepted drafts, and after a rejection at j it resamples
 *   with rng(s).residual(j), discards every unverified draft and continues from the resampled token, which its
 *   next block (with a fresh, higher number) carries and the edge feeds first.
 *
 * Uniforms of block b are keys of the scripted RNG of their own (BlockRng), and every key a path consumed is
 * carried along: a later stage that asks for one again throws, or (`conditioned`) is enumerated conditioned on
 * what the earlier stage learned about it, so a planted reuse is computed as the code behaves. States that agree
 * on everything the future depends on are merged at the end of each tick.
 */
import { RoundRng, resampleRejected } from '../src/index.js';
import type { PipelineBlock, PipelineResult, PipelineVerifier } from '../src/index.js';
import type { Dist, ToyPair } from './helpers.js';
import { roundLaw } from './round-enum.js';
import type { Hints, Interval, Key, Leaf } from './round-enum.js';

// ---------------------------------------------------------------------------------------------------------------
// Block-numbered uniforms.
// ---------------------------------------------------------------------------------------------------------------

const MAX_TICKS = 60;

/** Positions per block in a key: position i of block b is index b·STRIDE + i of the scripted RNG. */
const STRIDE = 1000;

/** rng(b) as the edge and the device get it: block b's draws, each a distinct key of the scripted RNG. */
export class BlockRng extends RoundRng {
  constructor(
    private readonly base: RoundRng,
    block: number,
  ) {
    super(0, 0, block);
  }
  private at(i: number): number {
    return this.round * STRIDE + i;
  }
  override draft(i: number): number {
    return this.base.draft(this.at(i));
  }
  override accept(i: number): number {
    return this.base.accept(this.at(i));
  }
  override residual(j: number): number {
    return this.base.residual(this.at(j));
  }
  override bonus(gamma: number): number {
    return this.base.bonus(this.at(gamma));
  }
  override candidate(j: number, k: number): number {
    return this.base.candidate(this.at(j), k);
  }
  override candidateAccept(j: number, k: number): number {
    return this.base.candidateAccept(this.at(j), k);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The pipelined schedule, enumerated exactly.
// ---------------------------------------------------------------------------------------------------------------

/** The edge's verifier: PipelineVerifier or a planted-bug subclass (`idle` is set before each call if present). */
export type EdgeVerifier = Pick<PipelineVerifier, 'verify'> & { idle?: boolean };

export interface Schedule {
  /** Drafts per block. */
  g: number;
  /** Most unverified drafts at once (sent blocks plus the block being drafted; the carried token not counted). */
  W: number;
  /** Ticks from a block's send to its handling at the edge and its verdict at the device, cycled over sends. */
  lat: number[];
  /** EOS-like token: a block ends right after it (a short block, sent at once). */
  eos?: number;
}

export interface Variant {
  verifier: () => EdgeVerifier;
  /** Bug (b) on the device: the block after a rejection takes the rejected block's number. */
  reuseIndex?: boolean;
  /**
   * Carry the interval each consumed uniform is known to lie in, so a stage that reuses a uniform is enumerated
   * as the code behaves (bug b). Otherwise a reused uniform throws, and states merge more.
   */
  conditioned?: boolean;
  /** Check the invariants of the exact schedule (the bug variants break them by design). */
  exact?: boolean;
}

interface Sent extends PipelineBlock {
  drafts: number[];
  q: number[];
  /** The piggybacked token (resampled, or the bonus of bug a), fed by the edge first. */
  carried: number | null;
  /** The Q each draft was sampled from (the device keeps them for its residual). */
  Qs: Dist[];
  /** Send order, and the tick at which the edge handles the block. */
  seq: number;
  due: number;
}

interface State {
  /** Device: committed tokens (accepted drafts, resampled tokens). The emitted stream. */
  out: number[];
  /** Device: the token its next block carries. */
  carry: number | null;
  partial: number[];
  partialQ: Dist[];
  /** Device: sent blocks awaiting their verdict (cleared on a rejection). */
  inflight: Sent[];
  /** Device: the next fresh block number, and the number bug (b) reuses for its next block. */
  next: number;
  reuse: number | null;
  sends: number;
  /** Edge: delivered blocks not yet handled, stale ones included. */
  queue: Sent[];
  /** Edge: the accepted prefix, piggybacked tokens fed. */
  edge: number[];
  verifier: EdgeVerifier;
  /** Uniforms this path consumed (with the piece each fell in, for `conditioned`). */
  used: Map<Key, Interval>;
  /** Coverage only (not part of the merge key): the most rejections on a path into this state. */
  rejections: number;
}

export interface Coverage {
  /** Further blocks sent before a verdict arrived, as seen. */
  further: Set<number>;
  /** Stale blocks delivered to (and dropped by) the verifier. */
  stale: number;
  secondBlockRejection: boolean;
  maxRejections: number;
  states: number;
  maxBlockNumber: number;
  /** Ticks until every path had emitted N tokens. */
  ticks: number;
}

const cloneObj = <T extends object>(v: T): T =>
  Object.assign(Object.create(Object.getPrototypeOf(v) as object) as T, v);

function cloneState(s: State): State {
  return {
    ...s,
    out: [...s.out],
    partial: [...s.partial],
    partialQ: [...s.partialQ],
    inflight: [...s.inflight],
    queue: [...s.queue],
    edge: [...s.edge],
    verifier: cloneObj(s.verifier),
    used: new Map(s.used),
  };
}

const blockKey = (b: Sent) =>
  `${b.index}:${b.carried ?? ''}:${b.drafts.join('.')}:${b.q.join('.')}:${b.seq}:${b.due}`;

/**
 * Everything the future depends on. The Qs of unverified drafts are not listed: they are fixed by `out` and the
 * unverified tokens (full acceptances move tokens from one to the other; anything else clears them).
 */
function stateKey(s: State, conditioned: boolean): string {
  const used = [...s.used].map(([k, [lo, hi]]) => (conditioned ? `${k}@${lo}-${hi}` : k));
  return [
    s.out.join(','),
    s.carry ?? '',
    s.partial.join(','),
    s.inflight.map(blockKey).join('/'),
    s.queue.map(blockKey).join('/'),
    s.next,
    s.reuse ?? '',
    s.sends,
    s.edge.join(','),
    JSON.stringify(s.verifier),
    used.sort().join(' '),
  ].join('|');
}

function addTo(law: Map<string, number>, key: string, mass: number): void {
  law.set(key, (law.get(key) ?? 0) + mass);
}

/** Leaves grouped into branches: by outcome (keys only), or one per leaf when intervals matter. */
function branches(
  leaves: Leaf[],
  conditioned: boolean,
): Array<{ outcome: string; mass: number; leaves: Leaf[] }> {
  if (conditioned) return leaves.map((l) => ({ outcome: l.outcome, mass: l.mass, leaves: [l] }));
  const by = new Map<string, { outcome: string; mass: number; leaves: Leaf[] }>();
  for (const l of leaves) {
    const b = by.get(l.outcome) ?? { outcome: l.outcome, mass: 0, leaves: [] };
    b.mass += l.mass;
    b.leaves.push(l);
    by.set(l.outcome, b);
  }
  return [...by.values()];
}

/** Marks a branch's uniforms consumed; without `conditioned`, one consumed before is a reuse. */
function consume(s: State, leaves: Leaf[], conditioned: boolean): void {
  for (const l of leaves) {
    for (const [k, iv] of l.fixed) {
      if (!conditioned && s.used.has(k)) throw new Error(`uniform ${k} reused`);
      s.used.set(k, iv);
    }
  }
}

/** Exact law of the first N tokens the device emits under the pipelined schedule, and what the paths covered. */
export function pipelineLaw(
  model: ToyPair,
  N: number,
  sch: Schedule,
  variant: Variant,
): { law: Map<string, number>; cover: Coverage } {
  const conditioned = variant.conditioned ?? false;
  const final = new Map<string, number>();
  const hints: Hints = new Map();
  const cover: Coverage = {
    further: new Set(),
    stale: 0,
    secondBlockRejection: false,
    maxRejections: 0,
    states: 0,
    maxBlockNumber: 0,
    ticks: 0,
  };
  // Stage laws depend only on their inputs unless uniforms are conditioned; reuse them across states.
  const edgeCache = new Map<
    string,
    { leaves: Leaf[]; after: Map<string, { v: EdgeVerifier; r: PipelineResult }> }
  >();
  const deviceCache = new Map<string, Leaf[]>();

  const send = (s: State, t: number) => {
    const index = s.reuse ?? s.next++;
    s.reuse = null;
    cover.maxBlockNumber = Math.max(cover.maxBlockNumber, index);
    const b: Sent = {
      index,
      carriesResample: s.carry !== null,
      carried: s.carry,
      drafts: s.partial,
      q: s.partial.map((x, i) => s.partialQ[i][x]),
      Qs: s.partialQ,
      seq: s.sends,
      due: t + sch.lat[s.sends % sch.lat.length],
    };
    s.sends++;
    s.carry = null;
    s.partial = [];
    s.partialQ = [];
    s.inflight.push(b);
    s.queue.push(b);
  };

  /** Device, one tick: draft a token if the window allows; send the block when it is complete. */
  const draftStep = (s: State, mass: number, t: number, k: (s: State, mass: number) => void) => {
    const unverified = s.inflight.reduce((n, b) => n + b.drafts.length, 0) + s.partial.length;
    if (unverified >= sch.W) return k(s, mass);
    const ctx = [...s.out, ...s.inflight.flatMap((b) => b.drafts), ...s.partial];
    const Q = model.draft(ctx);
    for (let x = 0; x < model.V; x++) {
      if (!(Q[x] > 0)) continue;
      const s2 = cloneState(s);
      s2.partial.push(x);
      s2.partialQ.push(Q);
      if (s2.partial.length === sch.g || x === sch.eos) send(s2, t);
      k(s2, mass * Q[x]);
    }
  };

  /** Device: a verdict for block h; after a rejection at j, the resampling stage. */
  const onVerdict = (
    s: State,
    h: Sent,
    r: Exclude<PipelineResult, { stale: true }>,
    mass: number,
    k: (s: State, mass: number) => void,
  ) => {
    const at = s.inflight.indexOf(h);
    if (variant.exact && at !== 0) throw new Error(`verdict for block ${h.index} out of order (${at})`);
    if (at < 0) return k(s, mass); // bug (c): a verdict for a block the device already discarded
    if (r.rejectedAt === null && r.bonus === null) {
      s.out.push(...h.drafts);
      s.inflight.splice(0, at + 1);
      if (variant.exact && s.out.join() !== s.edge.join()) throw new Error('edge and device disagree');
      return k(s, mass);
    }
    const restart = (s2: State, tokens: number[]) => {
      s2.out.push(...tokens);
      s2.carry = tokens[tokens.length - 1];
      s2.inflight = [];
      s2.partial = [];
      s2.partialQ = [];
      if (variant.exact && s2.out.join() !== [...s2.edge, s2.carry].join())
        throw new Error('edge and device disagree');
    };
    if (r.rejectedAt === null) {
      const s2 = cloneState(s);
      restart(s2, [...h.drafts, r.bonus as number]);
      return k(s2, mass);
    }
    const j = r.rejectedAt;
    const Pj = r.rejectedRow as ArrayLike<number>;
    const Qj = h.Qs[j - 1];
    const run = (rng: RoundRng) => String(resampleRejected(Pj, Qj, j, new BlockRng(rng, h.index)));
    let leaves: Leaf[];
    if (conditioned) {
      leaves = roundLaw(run, {}, hints, new Set(), s.used).leaves;
    } else {
      const id = `${h.index}|${j}|${Array.from(Pj).join()}|${Array.from(Qj).join()}`;
      leaves = deviceCache.get(id) ?? roundLaw(run, {}, hints).leaves;
      deviceCache.set(id, leaves);
    }
    if (h.seq === 1) cover.secondBlockRejection = true;
    for (const br of branches(leaves, conditioned)) {
      const s2 = cloneState(s);
      consume(s2, br.leaves, conditioned);
      restart(s2, [...h.drafts.slice(0, j - 1), Number(br.outcome)]);
      if (variant.reuseIndex) s2.reuse = h.index;
      s2.rejections++;
      cover.maxRejections = Math.max(cover.maxRejections, s2.rejections);
      k(s2, mass * br.mass);
    }
  };

  /** Edge, one tick: handle every due block in order (verify or drop), each verdict going to the device. */
  const edgeStep = (s: State, mass: number, t: number, park: (s: State, m: number) => void) => {
    const h = s.queue[0];
    if (!h || h.due > t) return park(s, mass);
    const base = h.carried === null ? s.edge : [...s.edge, h.carried];
    const target = (i: number) => model.target([...base, ...h.drafts.slice(0, i - 1)]);
    const idle = s.queue.length === 1;
    const stage = () => {
      const after = new Map<string, { v: EdgeVerifier; r: PipelineResult }>();
      const run = (rng: RoundRng) => {
        const v = cloneObj(s.verifier);
        if ('idle' in v) v.idle = idle;
        const r = v.verify(h, target, (i) => new BlockRng(rng, i));
        const outcome = r.stale
          ? 'stale'
          : r.rejectedAt !== null
            ? `r${r.rejectedAt}`
            : r.bonus !== null
              ? `b${r.bonus}`
              : 'a';
        after.set(outcome, { v, r });
        return outcome;
      };
      const given = conditioned ? s.used : new Map<Key, Interval>();
      return { leaves: roundLaw(run, {}, hints, new Set(), given).leaves, after };
    };
    let res: { leaves: Leaf[]; after: Map<string, { v: EdgeVerifier; r: PipelineResult }> };
    if (conditioned) {
      res = stage();
    } else {
      const id = [JSON.stringify(s.verifier), idle, blockKey(h), base.join()].join('|');
      res = edgeCache.get(id) ?? stage();
      edgeCache.set(id, res);
    }
    for (const br of branches(res.leaves, conditioned)) {
      const { v, r } = res.after.get(br.outcome) as { v: EdgeVerifier; r: PipelineResult };
      const s2 = cloneState(s);
      s2.queue.shift();
      s2.verifier = cloneObj(v);
      const m = mass * br.mass;
      if (r.stale) {
        // Dropped silently: no uniform was consumed, and nothing else changes.
        if (br.leaves.some((l) => l.fixed.size > 0)) throw new Error('a stale block consumed uniforms');
        if (variant.exact && JSON.stringify(v) !== JSON.stringify(s.verifier))
          throw new Error('a stale block changed the verifier');
        cover.stale++;
        edgeStep(s2, m, t, park);
        continue;
      }
      consume(s2, br.leaves, conditioned);
      s2.edge = [...base, ...h.drafts.slice(0, r.accepted)];
      cover.further.add(s.sends - h.seq - 1);
      onVerdict(s2, h, r, m, (s3, m3) => (s3.out.length >= N ? park(s3, m3) : edgeStep(s3, m3, t, park)));
    }
  };

  const init: State = {
    out: [],
    carry: null,
    partial: [],
    partialQ: [],
    inflight: [],
    next: 0,
    reuse: null,
    sends: 0,
    queue: [],
    edge: [],
    verifier: variant.verifier(),
    used: new Map(),
    rejections: 0,
  };
  let frontier = new Map<string, { s: State; mass: number }>([['', { s: init, mass: 1 }]]);
  for (let t = 0; frontier.size > 0; t++) {
    // The configurations here end within ~30 ticks; a device waiting for a verdict that never comes does not.
    if (t > MAX_TICKS) throw new Error('the schedule makes no progress');
    cover.ticks = t + 1;
    const next = new Map<string, { s: State; mass: number }>();
    const park = (s: State, mass: number) => {
      if (s.out.length >= N) return addTo(final, s.out.slice(0, N).join(','), mass);
      const key = stateKey(s, conditioned);
      const e = next.get(key);
      if (!e) return void next.set(key, { s, mass });
      e.mass += mass;
      e.s.rejections = Math.max(e.s.rejections, s.rejections);
    };
    for (const { s, mass } of frontier.values()) {
      cover.states++;
      draftStep(s, mass, t, (s2, m2) => edgeStep(s2, m2, t, park));
    }
    frontier = next;
  }
  return { law: final, cover };
}
