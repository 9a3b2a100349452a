import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { ModelError, ModelErrorCode } from './errors.js';
import type { ModelConfig, ModelLayout, OrtModule } from './config.js';

/** What a session needs from its model; kept narrow so sessions never reach into loading code. */
export interface SessionContext {
  readonly ort: OrtModule;
  readonly session: InferenceSession;
  readonly layout: ModelLayout;
  readonly config: ModelConfig;
  readonly isDisposed: () => boolean;
}

export interface ForwardOptions {
  /**
   * Return only the logits of the last `keep` new tokens (default: all). Graphs with a `num_logits_to_keep` input
   * then also skip the LM head for the other positions, which is what makes a long prefill cheap.
   */
  keep?: number;
}

type KvData = Float32Array | Uint16Array;
type TensorCtor = new (type: string, data: unknown, dims: readonly number[]) => Tensor;

function makeTensor(ort: OrtModule, type: string, data: unknown, dims: readonly number[]): Tensor {
  return new (ort.Tensor as unknown as TensorCtor)(type, data, dims);
}

/** Releases an ORT tensor where the runtime supports it (CPU tensors just drop their data reference). */
function release(t: Tensor | undefined): void {
  if (t && typeof t.dispose === 'function') t.dispose();
}

/** A zero-length cache ([1, kvHeads, 0, headDim] per key and value of each layer), as for a fresh sequence. */
export function emptyPast(ctx: SessionContext): Tensor[] {
  const { numKvHeads, headDim, kvType } = ctx.config;
  return Array.from({ length: 2 * ctx.layout.pastKeys.length }, () => {
    const data = kvType === 'float16' ? new Uint16Array(0) : new Float32Array(0);
    return makeTensor(ctx.ort, kvType, data, [1, numKvHeads, 0, headDim]);
  });
}

/**
 * Builds the feeds of one decoder-with-past step: `tokens` appended after `pastLength` cached positions. The
 * returned `owned` tensors were created here and can be released after the run (the past tensors are not).
 */
export function buildFeeds(
  ctx: SessionContext,
  tokens: readonly number[],
  pastLength: number,
  past: readonly Tensor[],
  keep: number,
): { feeds: InferenceSession.FeedsType; owned: Tensor[] } {
  const { ort, layout } = ctx;
  const n = tokens.length;
  const total = pastLength + n;
  const feeds: Record<string, Tensor> = {};
  const owned: Tensor[] = [];
  const add = (name: string, t: Tensor) => {
    feeds[name] = t;
    owned.push(t);
  };
  const ids = new BigInt64Array(n);
  for (let i = 0; i < n; i++) ids[i] = BigInt(tokens[i]);
  add(layout.inputIds, makeTensor(ort, 'int64', ids, [1, n]));
  if (layout.attentionMask) {
    add(layout.attentionMask, makeTensor(ort, 'int64', new BigInt64Array(total).fill(1n), [1, total]));
  }
  if (layout.positionIds) {
    const pos = new BigInt64Array(n);
    for (let i = 0; i < n; i++) pos[i] = BigInt(pastLength + i);
    add(layout.positionIds, makeTensor(ort, 'int64', pos, [1, n]));
  }
  if (layout.numLogitsToKeep) {
    const dims = layout.numLogitsToKeepScalar ? [] : [1];
    add(layout.numLogitsToKeep, makeTensor(ort, 'int64', BigInt64Array.of(BigInt(keep)), dims));
  }
  if (layout.useCacheBranch) {
    add(layout.useCacheBranch, makeTensor(ort, 'bool', Uint8Array.of(pastLength > 0 ? 1 : 0), [1]));
  }
  for (let i = 0; i < layout.pastKeys.length; i++) {
    feeds[layout.pastKeys[i]] = past[2 * i];
    feeds[layout.pastValues[i]] = past[2 * i + 1];
  }
  return { feeds, owned };
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/**
 * Splits a [1, rows, V] logits tensor into per-token rows of tokenizer size: views into the output buffer when only
 * trimming (no copy), fresh −Infinity-padded rows when the model has fewer rows than the tokenizer.
 */
export function logitsRows(
  data: ArrayLike<number>,
  first: number,
  count: number,
  rows: number,
  vocab: number,
) {
  const out: Float32Array[] = [];
  for (let r = first; r < first + count; r++) {
    const start = r * rows;
    if (data instanceof Float32Array && rows >= vocab) {
      out.push(data.subarray(start, start + vocab));
      continue;
    }
    const row = new Float32Array(vocab);
    const n = Math.min(rows, vocab);
    if (data instanceof Float32Array) row.set(data.subarray(start, start + n));
    else if (data instanceof Uint16Array) for (let i = 0; i < n; i++) row[i] = halfToFloat(data[start + i]);
    else for (let i = 0; i < n; i++) row[i] = data[start + i]; // Float16Array where the runtime has it
    if (n < vocab) row.fill(-Infinity, n);
    out.push(row);
  }
  return out;
}

/** Refuses ids the model cannot embed and appends past the context; shared by single and batched passes. */
export function checkTokens(config: ModelConfig, tokens: readonly number[], past: number): void {
  const limit = Math.min(config.vocabSize, config.logitsRows);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= limit) {
      throw new ModelError(
        ModelErrorCode.BadToken,
        `token ${String(t)} at index ${i} is not an id of ${config.name} (valid: integers in [0, ${limit}))`,
      );
    }
  }
  const total = past + tokens.length;
  if (total > config.maxContext) {
    throw new ModelError(
      ModelErrorCode.ContextOverflow,
      `${config.name}: forwarding ${tokens.length} tokens after ${past} cached needs ${total} positions but the ` +
        `context is ${config.maxContext}; truncate the session first`,
    );
  }
}

/**
 * One sequence's KV cache over a shared ONNX session. Calls must not overlap: a second call while a forward is in
 * flight throws (the protocol depends on the order of appends and truncations, so silently queueing would hide bugs).
 */
export class ModelSession {
  readonly #ctx: SessionContext;
  #past: Tensor[];
  #tokens: number[] = [];
  #busy = false;
  #disposed = false;

  constructor(ctx: SessionContext) {
    this.#ctx = ctx;
    this.#past = emptyPast(this.#ctx);
  }

  /** Number of tokens in the KV cache. */
  get length(): number {
    return this.#tokens.length;
  }

  /** The cached token ids (a copy). */
  tokens(): number[] {
    return this.#tokens.slice();
  }

  /**
   * Appends `tokens` to the cache in ONE run call and returns one logits row (tokenizer size) per new token, or the
   * last `options.keep` rows. Rows may be views into a shared buffer: copy one before transferring it elsewhere.
   * On any error the session is unchanged.
   */
  async forward(tokens: readonly number[], options: ForwardOptions = {}): Promise<Float32Array[]> {
    this.#enter();
    try {
      return await this.#run(tokens, options.keep ?? tokens.length);
    } finally {
      this.#busy = false;
    }
  }

  /** Forwards a prompt and returns the logits after its last token (only that row is computed where possible). */
  async prefill(tokens: readonly number[]): Promise<Float32Array> {
    if (tokens.length === 0)
      throw new ModelError(ModelErrorCode.BadArgument, 'prefill needs at least one token');
    return (await this.forward(tokens, { keep: 1 }))[0];
  }

  /** Appends one token and returns the logits that follow it. */
  async decodeOne(token: number): Promise<Float32Array> {
    return (await this.forward([token]))[0];
  }

  /** Drops cached tokens after the first `length` (any committed length from 0 to `this.length`). */
  truncate(length: number): void {
    this.#enter();
    try {
      const cur = this.#tokens.length;
      if (!Number.isInteger(length) || length < 0 || length > cur) {
        throw new ModelError(
          ModelErrorCode.BadArgument,
          `cannot truncate a session of ${cur} tokens to ${String(length)}: need an integer in [0, ${cur}]`,
        );
      }
      if (length === cur) return;
      if (length === 0) return this.#resetPast();
      const { numKvHeads: h, headDim: d } = this.#ctx.config;
      // The cache is [1, heads, seq, headDim]: copy the first `length` positions of each head.
      this.#past = this.#past.map((t) => {
        const src = t.data as KvData;
        const dst = new (src.constructor as new (n: number) => KvData)(h * length * d);
        for (let i = 0; i < h; i++)
          dst.set(src.subarray(i * cur * d, (i * cur + length) * d), i * length * d);
        release(t);
        return makeTensor(this.#ctx.ort, t.type, dst, [1, h, length, d]);
      });
      this.#tokens.length = length;
    } finally {
      this.#busy = false;
    }
  }

  /** Empties the cache. */
  reset(): void {
    this.#enter();
    try {
      this.#resetPast();
    } finally {
      this.#busy = false;
    }
  }

  /** Releases the cache; the session cannot be used afterwards. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    if (this.#busy)
      throw new ModelError(
        ModelErrorCode.BadArgument,
        'cannot dispose a session while a forward is in flight',
      );
    this.#disposed = true;
    for (const t of this.#past) release(t);
    this.#past = [];
    this.#tokens = [];
  }

  #enter(): void {
    if (this.#disposed) throw new ModelError(ModelErrorCode.Disposed, 'this session was disposed');
    if (this.#ctx.isDisposed()) {
      throw new ModelError(ModelErrorCode.Disposed, `model ${this.#ctx.config.name} was disposed`);
    }
    if (this.#busy) {
      throw new ModelError(
        ModelErrorCode.BadArgument,
        'a forward is already in flight on this session; await it before the next call',
      );
    }
    this.#busy = true;
  }

  #resetPast(): void {
    for (const t of this.#past) release(t);
    this.#past = emptyPast(this.#ctx);
    this.#tokens = [];
  }

  async #run(tokens: readonly number[], keep: number): Promise<Float32Array[]> {
    const { config, layout, session } = this.#ctx;
    const n = tokens.length;
    if (!Number.isInteger(keep) || keep < 0 || keep > n) {
      throw new ModelError(
        ModelErrorCode.BadArgument,
        `keep must be an integer in [0, ${n}], got ${String(keep)}`,
      );
    }
    if (n === 0) return [];
    checkTokens(config, tokens, this.#tokens.length);
    const past = this.#tokens.length;
    const total = past + n;
    // Ask the graph for at least one row so the run always has a logits output to check.
    const { feeds, owned } = buildFeeds(this.#ctx, tokens, past, this.#past, Math.max(keep, 1));
    let out: InferenceSession.ReturnType;
    try {
      out = await session.run(feeds);
    } catch (e) {
      throw new ModelError(
        ModelErrorCode.RunFailed,
        `${config.name}: ONNX Runtime failed on ${layout.file}: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    } finally {
      for (const t of owned) release(t);
    }

    const logits = out[layout.logits] as Tensor | undefined;
    const presents: Tensor[] = [];
    for (let i = 0; i < layout.presentKeys.length; i++) {
      presents.push(out[layout.presentKeys[i]] as Tensor, out[layout.presentValues[i]] as Tensor);
    }
    const fail = (why: string): never => {
      release(logits);
      for (const t of presents) release(t);
      throw new ModelError(ModelErrorCode.BadLayout, `${layout.file}: ${why}`);
    };
    if (!logits) return fail(`run returned no '${layout.logits}' output`);
    const [b, got, rows] = logits.dims;
    if (logits.dims.length !== 3 || b !== 1 || (got !== n && got !== Math.max(keep, 1))) {
      return fail(`logits have shape [${logits.dims.join(', ')}], expected [1, ${n}, ${config.logitsRows}]`);
    }
    if (rows !== config.logitsRows) {
      return fail(`logits have ${rows} rows per token, but the model was loaded with ${config.logitsRows}`);
    }
    const kv = presents[0];
    if (!kv || kv.dims.length !== 4 || kv.dims[2] !== total) {
      return fail(
        `present cache has shape [${kv ? kv.dims.join(', ') : ''}], expected length ${total} on axis 2`,
      );
    }
    const result = logitsRows(logits.data as ArrayLike<number>, got - keep, keep, rows, config.vocabSize);
    release(logits);
    // The presents become the next past as they are: no copy on the hot path.
    for (const t of this.#past) release(t);
    this.#past = presents;
    for (const t of tokens) this.#tokens.push(t);
    return result;
  }
}
