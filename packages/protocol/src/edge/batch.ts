/**
 * Continuous batching of target passes across sessions (issue 17). Each session's target is wrapped so that its
 * `forward` joins a queue; whenever the target is free the scheduler takes what is waiting (FIFO, up to a token
 * budget; a long prefill runs alone), runs ONE batched forward, and resolves every session's promise, after which
 * each session runs its own kernel step exactly as unbatched. Verify rounds (DSSD, DSD, pipelined blocks) and
 * edge-only (`ar`) steps go through the same queue, so the baseline is batched the same way.
 *
 * Exactness: a session's P rows come from the same target, only summed in another order (≤ 1e-4 in logits,
 * tested); acceptance and residual both use those rows, so the output law stays exact. The uniforms are fixed per
 * (turn, round, index), but near-ties may flip with the batch composition, so the same seed can give different
 * samples under different loads.
 */
import { BATCH_DEFAULTS, batchCostMs, type BatchCostTable } from '../settings.js';
import type { LmSession } from '../lm.js';

/** The batched target: one pass over several sessions' new tokens (@dssd/models' KvSlab fits). */
export interface BatchBackend<S> {
  run(items: readonly { session: S; tokens: readonly number[] }[]): Promise<Float32Array[][]>;
}

export interface BatchSchedulerOptions {
  tokenBudget?: number;
  soloAbove?: number;
  /** Sessions per pass at most (1: one session per pass, the unbatched baseline under the same queue). */
  maxItems?: number;
  /** EMULATION: pad every pass to T(B, tokens) from this table, and count passes whose real work took longer. */
  cost?: BatchCostTable;
  now?: () => number;
}

/** Figures of the passes run so far (emulated: `overruns` is the share of passes slower than the table). */
export interface BatchStats {
  passes: number;
  items: number;
  tokens: number;
  overruns: number;
  realMs: number;
  passMs: number;
}

interface Waiting<S> {
  session: S;
  tokens: number[];
  resolve: (rows: Float32Array[]) => void;
  reject: (e: unknown) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class BatchScheduler<S extends LmSession> {
  readonly stats: BatchStats = { passes: 0, items: 0, tokens: 0, overruns: 0, realMs: 0, passMs: 0 };
  readonly #backend: BatchBackend<S>;
  readonly #budget: number;
  readonly #solo: number;
  readonly #maxItems: number;
  readonly #cost: BatchCostTable | undefined;
  readonly #now: () => number;
  #queue: Waiting<S>[] = [];
  #running = false;
  #scheduled = false;

  constructor(backend: BatchBackend<S>, o: BatchSchedulerOptions = {}) {
    this.#backend = backend;
    this.#budget = o.tokenBudget ?? BATCH_DEFAULTS.tokenBudget;
    this.#solo = o.soloAbove ?? BATCH_DEFAULTS.soloAbove;
    this.#maxItems = o.maxItems ?? Infinity;
    this.#cost = o.cost;
    this.#now = o.now ?? (() => performance.now());
  }

  /** Requests waiting for a pass. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** The session as the edge sees it: same contract, its forward passes batched with the others'. */
  wrap(session: S): LmSession & { readonly inner: S; dispose(): void } {
    return {
      inner: session,
      dispose: () => (session as { dispose?: () => void }).dispose?.(),
      get length() {
        return session.length;
      },
      forward: (tokens: number[]) => this.forward(session, tokens),
      truncate: (length: number) => session.truncate(length),
    };
  }

  forward(session: S, tokens: number[]): Promise<Float32Array[]> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ session, tokens: tokens.slice(), resolve, reject });
      this.#kick();
    });
  }

  /**
   * Starts a pass on the next turn of the event loop, so sessions whose promises were just resolved run their
   * kernel step (and their devices' next requests that already arrived are queued) before the queue is read.
   */
  #kick(): void {
    if (this.#running || this.#scheduled || this.#queue.length === 0) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      void this.#pump();
    });
  }

  #take(): Waiting<S>[] {
    const first = this.#queue[0];
    if (first.tokens.length > this.#solo) {
      this.#queue.shift();
      return [first];
    }
    const taken: Waiting<S>[] = [];
    const seen = new Set<S>();
    let longest = 0;
    const rest: Waiting<S>[] = [];
    for (const w of this.#queue) {
      const n = Math.max(longest, w.tokens.length);
      // The pass is padded to its longest run: the budget counts rows × that run.
      const fits =
        w.tokens.length <= this.#solo &&
        taken.length < this.#maxItems &&
        (taken.length === 0 || (taken.length + 1) * n <= this.#budget);
      if (fits && !seen.has(w.session)) {
        taken.push(w);
        seen.add(w.session);
        longest = n;
      } else rest.push(w);
    }
    this.#queue = rest;
    return taken;
  }

  async #pump(): Promise<void> {
    if (this.#running || this.#queue.length === 0) return;
    this.#running = true;
    const batch = this.#take();
    const t0 = this.#now();
    try {
      let rows: (Float32Array[] | Error)[];
      try {
        rows = await this.#backend.run(batch.map((w) => ({ session: w.session, tokens: w.tokens })));
      } catch (e) {
        // One session's bad request must not fail the others: run each alone to find it.
        if (batch.length === 1) throw e;
        rows = [];
        for (const w of batch) {
          try {
            rows.push((await this.#backend.run([{ session: w.session, tokens: w.tokens }]))[0]);
          } catch (err) {
            rows.push(err instanceof Error ? err : new Error(String(err)));
          }
        }
      }
      const tokens = batch.reduce((a, w) => a + w.tokens.length, 0);
      const real = this.#now() - t0;
      this.stats.realMs += real;
      if (this.#cost) {
        const target = batchCostMs(this.#cost, batch.length, tokens);
        if (real > target) this.stats.overruns++;
        else await sleep(target - real);
      }
      this.stats.passes++;
      this.stats.items += batch.length;
      this.stats.tokens += tokens;
      this.stats.passMs += this.#now() - t0;
      batch.forEach((w, i) => {
        const r = rows[i];
        if (r instanceof Error) w.reject(r);
        else w.resolve(r);
      });
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.#running = false;
      this.#kick();
    }
  }
}
