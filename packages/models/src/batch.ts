/**
 * Batched target passes over a KV slab: one ONNX run scores the new tokens of several sequences.
 *
 * Layout (measured, see docs/capacity.md "Batched verification"): every sequence owns one row of a slab
 * [slots, kvHeads, capacity, headDim] per layer key/value that is never copied. A pass feeds the contiguous rows
 * it needs as the past (a view, no copy), masks each row's unused tail with attention_mask, gives explicit
 * position_ids, and fetches only the logits and the K/V of the new positions (extra graph outputs added by
 * graph.ts), which it writes into each row after its last position. Truncation only moves a row's length.
 * Padding every pass to the longest history with cache copies in and out measured 0.2–0.6× of separate passes
 * here: onnxruntime-node copies each full present cache into fresh JS memory, so the cost was the copies.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { ModelError, ModelErrorCode } from './errors.js';
import type { NewKvOutput } from './graph.js';
import { checkTokens, logitsRows, type SessionContext } from './session.js';

type KvData = Float32Array | Uint16Array;

/** A gathered past is padded to a multiple of this many positions (fewer distinct shapes for ORT to plan). */
const STAGE_ROUND = 16;
type TensorCtor = new (type: string, data: unknown, dims: readonly number[]) => Tensor;

/** One sequence's new tokens in a batched pass. */
export interface BatchItem {
  session: SlabSession;
  tokens: readonly number[];
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** float32 → float16 bits, round to nearest even (what ONNX Runtime's Cast does). */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const b = u32[0];
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let man = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    const half = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    return sign | (half + (rem > mid || (rem === mid && half & 1) ? 1 : 0));
  }
  let half = (e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  // A carry out of the mantissa lands in the exponent: the correct rounding (up to infinity).
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/**
 * A slab of KV rows over a second ONNX session of the target (the same weights, with the new-position K/V
 * exposed as outputs). Passes must not overlap; the scheduler runs them one at a time.
 */
export class KvSlab {
  readonly slots: number;
  /** Positions per row: the model's context. */
  readonly capacity: number;
  readonly #ctx: SessionContext;
  readonly #session: InferenceSession;
  readonly #newKv: readonly NewKvOutput[];
  readonly #kv: KvData[];
  readonly #rows: (SlabSession | null)[];
  readonly #rowSize: number;
  /** Staging buffers for gathered passes, one per layer key/value, grown as needed and reused. */
  readonly #staging: KvData[] = [];
  #running = false;
  #disposed = false;
  /** Passes run and rows they carried (including idle rows between requested ones), for the batch-size figures. */
  readonly stats = { passes: 0, rows: 0, items: 0, tokens: 0 };

  /** @internal use LanguageModel.createSlab */
  constructor(ctx: SessionContext, session: InferenceSession, newKv: readonly NewKvOutput[], slots: number) {
    const { numKvHeads: h, headDim: d, maxContext, kvType } = ctx.config;
    if (!Number.isInteger(slots) || slots < 1)
      throw new ModelError(ModelErrorCode.BadArgument, `slots must be a positive integer, got ${slots}`);
    this.#ctx = ctx;
    this.#session = session;
    this.#newKv = newKv;
    this.slots = slots;
    this.capacity = maxContext;
    this.#rowSize = h * maxContext * d;
    // Zero-filled and touched only where written, so untouched rows cost no resident memory.
    this.#kv = newKv.map(() =>
      kvType === 'float16' ? new Uint16Array(slots * this.#rowSize) : new Float32Array(slots * this.#rowSize),
    );
    this.#rows = new Array<SlabSession | null>(slots).fill(null);
  }

  #stage(j: number, size: number): KvData {
    const cur = this.#staging[j];
    if (cur && cur.length >= size) return cur.subarray(0, size);
    const next = this.#ctx.config.kvType === 'float16' ? new Uint16Array(size) : new Float32Array(size);
    this.#staging[j] = next;
    return next;
  }

  /** Sessions holding a row. */
  get used(): number {
    return this.#rows.filter((r) => r !== null).length;
  }

  /** A sequence with its own row (lowest free row first, so busy rows stay contiguous). */
  acquire(): SlabSession {
    if (this.#disposed) throw new ModelError(ModelErrorCode.Disposed, 'this slab was disposed');
    const row = this.#rows.indexOf(null);
    if (row < 0) {
      throw new ModelError(
        ModelErrorCode.BadArgument,
        `all ${this.slots} rows of the batch slab are in use; raise the slot count or close a session`,
      );
    }
    const s = new SlabSession(this, row);
    this.#rows[row] = s;
    return s;
  }

  /** @internal */
  release(row: number): void {
    this.#rows[row] = null;
  }

  /**
   * ONE run over the new tokens of `items` (distinct sessions of this slab); returns each item's logits rows
   * (tokenizer size; views into one output buffer: copy a row before keeping it past the next pass). On any error
   * every session is unchanged.
   */
  async run(items: readonly BatchItem[]): Promise<Float32Array[][]> {
    if (this.#disposed) throw new ModelError(ModelErrorCode.Disposed, 'this slab was disposed');
    if (this.#ctx.isDisposed())
      throw new ModelError(ModelErrorCode.Disposed, `model ${this.#ctx.config.name} was disposed`);
    if (this.#running)
      throw new ModelError(ModelErrorCode.BadArgument, 'a batched pass is already running on this slab');
    if (items.length === 0) return [];
    const { ort, layout, config } = this.#ctx;
    const seen = new Set<number>();
    let n = 0;
    for (const it of items) {
      const s = it.session;
      if (s.slab !== this || this.#rows[s.row] !== s)
        throw new ModelError(
          ModelErrorCode.Disposed,
          'a session in this pass does not hold a row of this slab',
        );
      if (seen.has(s.row))
        throw new ModelError(ModelErrorCode.BadArgument, 'a session appears twice in one pass');
      seen.add(s.row);
      checkTokens(config, it.tokens, s.length);
      n = Math.max(n, it.tokens.length);
    }
    if (n === 0) return items.map(() => []);
    const cap = this.capacity;
    const { numKvHeads: h, headDim: d, kvType } = config;
    // Two ways to lay out the past, chosen per pass by the positions ORT must concatenate and attend over:
    // the slab rows lo..hi as they are (a view: no copy, but idle rows in between and every row's whole
    // capacity ride along), or the requested rows' used prefixes gathered into a staging buffer of stride P (one
    // copy of what is used). The new K/V are written back to the rows either way.
    const rowsOf = [...seen];
    const lo = Math.min(...rowsOf);
    const hi = Math.max(...rowsOf);
    const longest = Math.max(...items.map((it) => it.session.length));
    const P0 = Math.min(cap, Math.ceil(longest / STAGE_ROUND) * STAGE_ROUND);
    const gather = 2 * items.length * P0 < (hi - lo + 1) * cap;
    const P = gather ? P0 : cap;
    /** Slab row of each batch row (−1: idle row of a direct view). */
    const rowOf = gather
      ? items.map((it) => it.session.row)
      : Array.from({ length: hi - lo + 1 }, (_, b) => lo + b);
    const k = rowOf.length;
    const byRow = new Map<number, BatchItem>(items.map((it) => [it.session.row, it]));
    const batchIndex = new Map<number, number>(rowOf.map((r, b) => [r, b]));

    const ids = new BigInt64Array(k * n);
    const pos = new BigInt64Array(k * n);
    const mask = new BigInt64Array(k * (P + n));
    for (let b = 0; b < k; b++) {
      const r = rowOf[b];
      const len = this.#rows[r]?.length ?? 0;
      const toks = byRow.get(r)?.tokens ?? [];
      mask.fill(1n, b * (P + n), b * (P + n) + len);
      mask.fill(1n, b * (P + n) + P, (b + 1) * (P + n));
      for (let i = 0; i < n; i++) {
        // Idle rows and the padding after a row's own tokens feed token 0; causality keeps them out of the
        // real tokens' attention. Their positions are clamped to stay inside the position table.
        ids[b * n + i] = BigInt(toks[i] ?? 0);
        pos[b * n + i] = BigInt(Math.min(len + i, config.maxContext - 1));
      }
    }
    const T = ort.Tensor as unknown as TensorCtor;
    const feeds: Record<string, Tensor> = {
      [layout.inputIds]: new T('int64', ids, [k, n]),
    };
    if (layout.attentionMask) feeds[layout.attentionMask] = new T('int64', mask, [k, P + n]);
    if (layout.positionIds) feeds[layout.positionIds] = new T('int64', pos, [k, n]);
    if (layout.numLogitsToKeep) {
      const dims = layout.numLogitsToKeepScalar ? [] : [1];
      feeds[layout.numLogitsToKeep] = new T('int64', BigInt64Array.of(BigInt(n)), dims);
    }
    if (layout.useCacheBranch) feeds[layout.useCacheBranch] = new T('bool', Uint8Array.of(1), [1]);
    for (let i = 0; i < layout.pastKeys.length; i++) {
      for (const [j, name] of [
        [2 * i, layout.pastKeys[i]],
        [2 * i + 1, layout.pastValues[i]],
      ] as const) {
        let view: KvData;
        if (gather) {
          view = this.#stage(j, k * h * P * d);
          const src = this.#kv[j];
          for (let b = 0; b < k; b++) {
            const r = rowOf[b];
            const len = this.#rows[r]!.length;
            for (let hh = 0; hh < h; hh++) {
              const from = (r * h + hh) * cap * d;
              view.set(src.subarray(from, from + len * d), (b * h + hh) * P * d);
            }
          }
        } else view = this.#kv[j].subarray(lo * this.#rowSize, (hi + 1) * this.#rowSize);
        feeds[name] = new T(kvType, view, [k, h, P, d]);
      }
    }
    this.#running = true;
    let out: InferenceSession.ReturnType;
    try {
      out = await this.#session.run(feeds, [layout.logits, ...this.#newKv.map((x) => x.name)]);
    } catch (e) {
      throw new ModelError(
        ModelErrorCode.RunFailed,
        `${config.name}: batched run failed: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    } finally {
      this.#running = false;
    }
    const logits = out[layout.logits] as Tensor;
    if (logits.dims.length !== 3 || logits.dims[0] !== k || logits.dims[1] !== n)
      throw new ModelError(ModelErrorCode.BadLayout, `batched logits have shape [${logits.dims.join(', ')}]`);
    const news = this.#newKv.map((x) => out[x.name] as Tensor);
    for (const t of news) {
      const [a, bh, bn, bd] = t.dims;
      if (t.dims.length !== 4 || a !== k || bh !== h || bn !== n || bd !== d)
        throw new ModelError(
          ModelErrorCode.BadLayout,
          `new K/V output has shape [${t.dims.join(', ')}], expected [${k}, ${h}, ${n}, ${d}]`,
        );
    }
    const rows = logits.dims[2];
    const results = items.map((it) => {
      const s = it.session;
      const b = batchIndex.get(s.row)!;
      const m = it.tokens.length;
      const len = s.length;
      for (let j = 0; j < news.length; j++) {
        const src = news[j].data as KvData;
        const dst = this.#kv[j];
        for (let hh = 0; hh < h; hh++) {
          const from = (b * h + hh) * n * d;
          const to = ((s.row * h + hh) * cap + len) * d;
          const part = src.subarray(from, from + m * d);
          if (dst instanceof Uint16Array && part instanceof Float32Array) {
            for (let x = 0; x < part.length; x++) dst[to + x] = floatToHalf(part[x]);
          } else dst.set(part, to);
        }
      }
      s.appended(it.tokens);
      return logitsRows(logits.data as ArrayLike<number>, b * n, m, rows, config.vocabSize);
    });
    for (const t of news) t.dispose?.();
    this.stats.passes++;
    this.stats.rows += k;
    this.stats.items += items.length;
    this.stats.tokens += items.reduce((a, it) => a + it.tokens.length, 0);
    return results;
  }

  /** Releases the batched ONNX session; its sessions then throw Disposed. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#rows.fill(null);
    await this.#session.release();
  }
}

/** One sequence in a slab row; the same contract as ModelSession (forward alone runs a pass of one row). */
export class SlabSession {
  readonly slab: KvSlab;
  readonly row: number;
  #tokens: number[] = [];
  #disposed = false;

  /** @internal use KvSlab.acquire */
  constructor(slab: KvSlab, row: number) {
    this.slab = slab;
    this.row = row;
  }

  get length(): number {
    return this.#tokens.length;
  }

  tokens(): number[] {
    return this.#tokens.slice();
  }

  async forward(tokens: readonly number[]): Promise<Float32Array[]> {
    this.#live();
    return (await this.slab.run([{ session: this, tokens }]))[0];
  }

  /** @internal */
  appended(tokens: readonly number[]): void {
    for (const t of tokens) this.#tokens.push(t);
  }

  /** Drops positions after `length`: the row keeps its data, the mask stops covering it. */
  truncate(length: number): void {
    this.#live();
    const cur = this.#tokens.length;
    if (!Number.isInteger(length) || length < 0 || length > cur) {
      throw new ModelError(
        ModelErrorCode.BadArgument,
        `cannot truncate a session of ${cur} tokens to ${String(length)}: need an integer in [0, ${cur}]`,
      );
    }
    this.#tokens.length = length;
  }

  reset(): void {
    this.truncate(0);
  }

  /** Frees the row. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#tokens = [];
    this.slab.release(this.row);
  }

  #live(): void {
    if (this.#disposed) throw new ModelError(ModelErrorCode.Disposed, 'this session was disposed');
  }
}
