import type { InferenceSession, Tensor } from 'onnxruntime-common';
import { ModelError, ModelErrorCode } from './errors.js';
import { joinPath, toLoader } from './loader.js';
import type { ModelLoader, ReadFile } from './loader.js';
import { ModelSession, buildFeeds, emptyPast } from './session.js';
import { KvSlab } from './batch.js';
import { newKvTensors, withExtraOutputs, type NewKvOutput } from './graph.js';
import type { ModelConfig, ModelLayout, OrtModule } from './config.js';
export type { ModelConfig, ModelLayout, OrtModule } from './config.js';
import type { SessionContext } from './session.js';
import { TextTokenizer } from './tokenizer.js';
import { chatTemplateFrom } from './chat.js';
import type { ChatTemplate } from './chat.js';
import type { TokenizerJson } from './tokenizer.js';

export interface LoadModelOptions {
  /** The ONNX Runtime module (`import * as ort from 'onnxruntime-web/wasm'`, or onnxruntime-node). */
  ort: OrtModule;
  /** File access relative to nothing: it receives `source` joined with a file name. */
  loader: ModelLoader | ReadFile;
  /** ONNX file to use: a name inside onnx/ (`model_q4.onnx`) or a path relative to the source. */
  modelFile?: string;
  /** External-data files next to the ONNX file (names relative to its folder); discovered when the loader lists. */
  externalData?: string[];
  executionProviders?: InferenceSession.ExecutionProviderConfig[];
  /** Extra ORT session options (threads, optimisation level, …); `executionProviders` above wins. */
  sessionOptions?: InferenceSession.SessionOptions;
  /** Display name; default: config `_name_or_path`, else the last segment of `source`. */
  name?: string;
  /** Use a shorter context than config.json allows (e.g. to bound cache memory). */
  maxContext?: number;
}

type Json = Record<string, unknown>;

/** Largest |Δlogit| between a slab pass and a single pass that the probe accepts (padding reorders sums). */
const SLAB_PROBE_TOLERANCE = 1e-3;

/** The batched variant of a model's graph (see graph.ts). */
interface BatchGraph {
  session: InferenceSession;
  newKv: NewKvOutput[];
}

const PAST = /^past_key_values\.(\d+)\.(key|value)$/;
const PRESENT = /^present(?:_key_values)?\.(\d+)\.(key|value)$/;
const KEEP_NAMES = ['num_logits_to_keep', 'logits_to_keep'];

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function firstNumber(cfg: Json, keys: string[]): number | undefined {
  for (const k of keys) {
    const v = cfg[k];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}

/** Pairs `{i}.key`/`{i}.value` names into per-layer lists, requiring layers 0..L-1 to be complete. */
function pairLayers(names: readonly string[], re: RegExp, what: string, file: string) {
  const keys: string[] = [];
  const values: string[] = [];
  for (const name of names) {
    const m = re.exec(name);
    if (!m) continue;
    (m[2] === 'key' ? keys : values)[Number(m[1])] = name;
  }
  const n = Math.max(keys.length, values.length);
  for (let i = 0; i < n; i++) {
    if (!keys[i] || !values[i]) {
      throw new ModelError(
        ModelErrorCode.BadLayout,
        `${file}: ${what} of layer ${i} is incomplete (need key and value)`,
      );
    }
  }
  return { keys, values };
}

function tensorMeta(
  list: readonly InferenceSession.ValueMetadata[] | undefined,
  name: string,
): InferenceSession.TensorValueMetadata | undefined {
  // Some ORT builds lack metadata or throw on access; config.json is the fallback.
  try {
    const m = list?.find((x) => x.name === name);
    return m && m.isTensor ? m : undefined;
  } catch {
    return undefined;
  }
}

function detectLayout(session: InferenceSession, file: string): ModelLayout {
  const inputs = session.inputNames;
  const outputs = session.outputNames;
  const has = (n: string) => inputs.includes(n);
  if (!has('input_ids')) {
    throw new ModelError(
      ModelErrorCode.BadLayout,
      `${file} has no input_ids input (inputs: ${inputs.join(', ')})`,
    );
  }
  const past = pairLayers(inputs, PAST, 'past_key_values', file);
  if (past.keys.length === 0) {
    throw new ModelError(
      ModelErrorCode.BadLayout,
      `${file} has no past_key_values.* inputs (inputs: ${inputs.join(', ')}); export the decoder with past ` +
        `(Hugging Face text-generation-with-past layout) so the KV cache can be reused`,
    );
  }
  const present = pairLayers(outputs, PRESENT, 'present', file);
  if (present.keys.length !== past.keys.length) {
    throw new ModelError(
      ModelErrorCode.BadLayout,
      `${file} has ${past.keys.length} past_key_values layers but ${present.keys.length} present.* outputs`,
    );
  }
  const logits = outputs.includes('logits') ? 'logits' : null;
  if (!logits) {
    throw new ModelError(
      ModelErrorCode.BadLayout,
      `${file} has no logits output (outputs: ${outputs.join(', ')})`,
    );
  }
  const keep = KEEP_NAMES.find(has) ?? null;
  const keepMeta = keep ? tensorMeta(session.inputMetadata, keep) : undefined;
  const layout: ModelLayout = {
    file,
    inputIds: 'input_ids',
    attentionMask: has('attention_mask') ? 'attention_mask' : null,
    positionIds: has('position_ids') ? 'position_ids' : null,
    numLogitsToKeep: keep,
    numLogitsToKeepScalar: !keepMeta || keepMeta.shape.length === 0,
    useCacheBranch: has('use_cache_branch') ? 'use_cache_branch' : null,
    pastKeys: past.keys,
    pastValues: past.values,
    presentKeys: present.keys,
    presentValues: present.values,
    logits,
  };
  const known = new Set<string>([
    layout.inputIds,
    ...[layout.attentionMask, layout.positionIds, layout.numLogitsToKeep, layout.useCacheBranch].filter(
      (x): x is string => x !== null,
    ),
    ...past.keys,
    ...past.values,
  ]);
  const unknown = inputs.filter((n) => !known.has(n));
  if (unknown.length > 0) {
    throw new ModelError(
      ModelErrorCode.BadLayout,
      `${file} has inputs this runtime cannot feed: ${unknown.join(', ')}`,
    );
  }
  return layout;
}

function parseJson(bytes: Uint8Array, file: string): Json {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Json;
  } catch (e) {
    throw new ModelError(ModelErrorCode.LoadFailed, `${file} is not valid JSON: ${errText(e)}`, { cause: e });
  }
}

/** A loaded model: tokenizer, config and a shared ONNX session; each `createSession()` has its own KV cache. */
export class LanguageModel {
  readonly source: string;
  readonly config: ModelConfig;
  readonly tokenizer: TextTokenizer;
  readonly layout: ModelLayout;
  /** tokenizer_config.json's chat template; null for a plain continuation model. */
  readonly chatTemplate: ChatTemplate | null;
  readonly #ctx: SessionContext;
  readonly #batchGraph: ((threads?: number) => Promise<BatchGraph>) | null;
  #batch: Promise<BatchGraph> | null = null;
  #disposed = false;

  /** @internal use {@link loadModel} */
  constructor(
    source: string,
    ort: OrtModule,
    session: InferenceSession,
    layout: ModelLayout,
    config: ModelConfig,
    tokenizer: TextTokenizer,
    chatTemplate: ChatTemplate | null = null,
    batchGraph: ((threads?: number) => Promise<BatchGraph>) | null = null,
  ) {
    this.source = source;
    this.config = config;
    this.tokenizer = tokenizer;
    this.layout = layout;
    this.chatTemplate = chatTemplate;
    this.#ctx = { ort, session, layout, config, isDisposed: () => this.#disposed };
    this.#batchGraph = batchGraph;
  }

  /** SHA-256 of the tokenizer (see tokenizerHash): equal hashes mean the pair can speculate together. */
  get tokenizerHash(): string {
    return this.tokenizer.hash;
  }

  createSession(): ModelSession {
    if (this.#disposed)
      throw new ModelError(ModelErrorCode.Disposed, `model ${this.config.name} was disposed`);
    return new ModelSession(this.#ctx);
  }

  /**
   * A KV slab of `slots` rows for batched passes (batch.ts). Its ONNX session is the same graph with the
   * new-position K/V exposed as outputs, created on first use (the weights are loaded a second time), with
   * `threads` intra-op threads (a batched pass is wide like a prefill, where a second thread pays off).
   */
  async createSlab(slots: number, options: { threads?: number } = {}): Promise<KvSlab> {
    if (this.#disposed)
      throw new ModelError(ModelErrorCode.Disposed, `model ${this.config.name} was disposed`);
    if (!this.#batchGraph)
      throw new ModelError(
        ModelErrorCode.BadArgument,
        `${this.config.name} was not loaded with its graph bytes`,
      );
    // One batched session per model: the first call's thread count holds.
    this.#batch ??= this.#batchGraph(options.threads).then((g) => this.#probeSlab(g));
    const g = await this.#batch;
    return new KvSlab(this.#ctx, g.session, g.newKv, slots);
  }

  /**
   * The slab masks unused positions with attention_mask and appends new keys after the whole capacity, so a graph
   * must derive causality from key indices, not from position_ids (the Qwen3 stand-in's export compares key index
   * with position_id and would hide the new tokens). One short pass through both paths tells which.
   */
  async #probeSlab(g: BatchGraph): Promise<BatchGraph> {
    const probe = [0, 1, 2];
    const single = this.createSession();
    const slab = new KvSlab(this.#ctx, g.session, g.newKv, 1);
    try {
      // The second pass has masked positions between the cached tokens and the new ones, as every pass will.
      const row = slab.acquire();
      await single.forward(probe);
      await slab.run([{ session: row, tokens: probe }]);
      const a = await single.forward([3, 4]);
      const b = (await slab.run([{ session: row, tokens: [3, 4] }]))[0];
      let worst = 0;
      for (let i = 0; i < a.length; i++)
        for (let v = 0; v < a[i].length; v++) worst = Math.max(worst, Math.abs(a[i][v] - b[i][v]) || 0);
      if (worst > SLAB_PROBE_TOLERANCE) {
        await g.session.release();
        throw new ModelError(
          ModelErrorCode.BadLayout,
          `${this.layout.file}: batched passes are not supported for this graph (its logits differ by ${worst.toFixed(3)} ` +
            'when unused cache positions are masked: the graph derives causality from position_ids)',
        );
      }
      return g;
    } finally {
      single.dispose();
    }
  }

  /** Releases the ONNX session; sessions created from this model then throw Disposed. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#batch) await (await this.#batch.catch(() => null))?.session.release();
    await this.#ctx.session.release();
  }
}

async function readRequired(
  loader: ModelLoader,
  source: string,
  file: string,
  hint = '',
): Promise<Uint8Array> {
  const bytes = await readOptional(loader, source, file);
  if (!bytes) {
    throw new ModelError(ModelErrorCode.MissingFile, `${file} not found in model ${source}${hint}`);
  }
  return bytes;
}

async function readOptional(loader: ModelLoader, source: string, file: string): Promise<Uint8Array | null> {
  const path = joinPath(source, file);
  let data: Uint8Array | ArrayBuffer | null;
  try {
    data = await loader.read(path);
  } catch (e) {
    if (e instanceof ModelError) throw e;
    throw new ModelError(ModelErrorCode.LoadFailed, `reading ${path} failed: ${errText(e)}`, { cause: e });
  }
  if (data === null || data === undefined) return null;
  return data instanceof Uint8Array ? data : new Uint8Array(data);
}

async function findModelFile(loader: ModelLoader, source: string, explicit?: string): Promise<string> {
  if (explicit) return explicit.includes('/') ? explicit : `onnx/${explicit}`;
  if (!loader.list) return 'onnx/model.onnx';
  let names: string[] | null;
  try {
    names = await loader.list(joinPath(source, 'onnx'));
  } catch (e) {
    throw new ModelError(
      ModelErrorCode.LoadFailed,
      `listing ${joinPath(source, 'onnx')} failed: ${errText(e)}`,
      {
        cause: e,
      },
    );
  }
  if (!names)
    throw new ModelError(
      ModelErrorCode.MissingFile,
      `onnx/model.onnx not found in model ${source} (no onnx/ folder)`,
    );
  if (names.includes('model.onnx')) return 'onnx/model.onnx';
  const candidates = names.filter((n) => /^model.*\.onnx$/.test(n)).sort();
  if (candidates.length === 0) {
    throw new ModelError(
      ModelErrorCode.MissingFile,
      `onnx/model.onnx not found in model ${source} (onnx/ holds ${names.length ? names.join(', ') : 'nothing'})`,
    );
  }
  return `onnx/${candidates[0]}`;
}

/**
 * External-data file names the graph itself refers to, for loaders that cannot list a folder (URLs): each tensor's
 * `location` is a length-prefixed string in the protobuf, so a byte search for the conventional names
 * (`model.onnx_data`, `model.onnx_data_1`, `model.onnx.data`) finds them without parsing the graph.
 */
export function externalDataNamesIn(bytes: Uint8Array, base: string): string[] {
  const key = new TextEncoder().encode(base);
  const names = new Set<string>();
  const escaped = base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const valid = new RegExp(`^${escaped}(_data(_\\d+)?|\\.data)$`);
  outer: for (let i = 1; i + key.length <= bytes.length; i++) {
    for (let k = 0; k < key.length; k++) if (bytes[i + k] !== key[k]) continue outer;
    const len = bytes[i - 1]; // a one-byte varint length: names under 128 bytes
    if (len <= key.length || len >= 128 || i + len > bytes.length) continue;
    const name = new TextDecoder().decode(bytes.subarray(i, i + len));
    if (valid.test(name)) names.add(name);
  }
  return [...names].sort();
}

async function findExternalData(
  loader: ModelLoader,
  source: string,
  file: string,
  bytes: Uint8Array,
  explicit?: string[],
) {
  const dir = file.slice(0, file.lastIndexOf('/') + 1);
  const base = file.slice(dir.length);
  let names = explicit ?? (loader.list ? undefined : externalDataNamesIn(bytes, base));
  if (!names && loader.list) {
    const folder = joinPath(source, dir.replace(/\/$/, '') || '.');
    let listed: string[];
    try {
      listed = (await loader.list(folder)) ?? [];
    } catch (e) {
      throw new ModelError(ModelErrorCode.LoadFailed, `listing ${folder} failed: ${errText(e)}`, {
        cause: e,
      });
    }
    names = listed.filter(
      (n) => n === `${base}_data` || n === `${base}.data` || n.startsWith(`${base}_data_`),
    );
  }
  const out: { path: string; data: Uint8Array }[] = [];
  for (const name of names ?? [])
    out.push({ path: name, data: await readRequired(loader, source, dir + name) });
  return out;
}

/** The numbers of an ONNX cache input, where the graph states them. */
function kvFromMeta(session: InferenceSession, name: string) {
  const m = tensorMeta(session.inputMetadata, name);
  if (!m) return {};
  const [, heads, , dim] = m.shape;
  return {
    heads: typeof heads === 'number' ? heads : undefined,
    dim: typeof dim === 'number' ? dim : undefined,
    type: m.type,
  };
}

/**
 * Applies the pairing rule: more logits rows than tokenizer ids → the extra rows are padding and get trimmed;
 * fewer → allowed only when every missing id is an added special token (it then gets logit −Infinity).
 */
function checkVocab(tokenizer: TextTokenizer, rows: number, modelFile: string): void {
  if (rows >= tokenizer.size) return;
  const bad: number[] = [];
  for (let id = rows; id < tokenizer.size && bad.length < 3; id++)
    if (!tokenizer.specialIds.has(id)) bad.push(id);
  if (bad.length === 0) return;
  const show = bad.map((id) => `${id} ${JSON.stringify(tokenizer.idToToken(id) ?? '?')}`).join(', ');
  throw new ModelError(
    ModelErrorCode.VocabMismatch,
    `tokenizer.json has ${tokenizer.size} tokens but ${modelFile} produces ${rows} logits and the difference is ` +
      `not padding: ids ${rows}..${tokenizer.size - 1} include ordinary tokens (${show}); ` +
      `this tokenizer does not belong to this model`,
  );
}

async function probeRows(ctx: SessionContext): Promise<number> {
  // Only when neither the graph nor config.json states the vocabulary: one tiny run reveals it.
  const { feeds } = buildFeeds(ctx, [0], 0, emptyPast(ctx), 1);
  const out = await ctx.session.run(feeds);
  const rows = (out[ctx.layout.logits] as Tensor).dims[2];
  for (const v of Object.values(out)) (v as Tensor).dispose?.();
  return rows;
}

/**
 * Loads a decoder-with-past ONNX model folder (local path or URL): config.json, tokenizer.json,
 * tokenizer_config.json (optional) and onnx/model*.onnx. GPT-2- and Llama-style exports both work: the layout
 * (position_ids, num_logits_to_keep, grouped-query KV heads) is read from the graph, with config.json as fallback.
 */
export async function loadModel(source: string, options: LoadModelOptions): Promise<LanguageModel> {
  const loader = toLoader(options.loader);
  const cfg = parseJson(await readRequired(loader, source, 'config.json'), 'config.json');
  const tokJson = parseJson(await readRequired(loader, source, 'tokenizer.json'), 'tokenizer.json');
  const tokCfgBytes = await readOptional(loader, source, 'tokenizer_config.json');
  const tokCfg = tokCfgBytes ? parseJson(tokCfgBytes, 'tokenizer_config.json') : {};
  const tokenizer = new TextTokenizer(tokJson as TokenizerJson, tokCfg);
  const chatTemplate = chatTemplateFrom(tokCfg);
  const genCfgBytes = await readOptional(loader, source, 'generation_config.json');
  const genCfg = genCfgBytes ? parseJson(genCfgBytes, 'generation_config.json') : {};

  const file = await findModelFile(loader, source, options.modelFile);
  const hint = options.modelFile ? '' : '; pass modelFile to choose another onnx/model*.onnx';
  const bytes = await readRequired(loader, source, file, hint);
  const externalData = await findExternalData(loader, source, file, bytes, options.externalData);

  const sessionOptions: InferenceSession.SessionOptions = {
    graphOptimizationLevel: 'all',
    ...options.sessionOptions,
  };
  const eps = options.executionProviders ?? options.sessionOptions?.executionProviders;
  if (eps) sessionOptions.executionProviders = eps;
  if (externalData.length > 0) sessionOptions.externalData = externalData;
  let session: InferenceSession;
  try {
    session = await options.ort.InferenceSession.create(bytes, sessionOptions);
  } catch (e) {
    throw new ModelError(
      ModelErrorCode.LoadFailed,
      `${file} could not be loaded by ONNX Runtime: ${errText(e)}`,
      {
        cause: e,
      },
    );
  }

  try {
    const layout = detectLayout(session, file);
    const meta = kvFromMeta(session, layout.pastKeys[0]);
    const heads = firstNumber(cfg, ['num_attention_heads', 'n_head', 'num_heads']);
    const numKvHeads = meta.heads ?? firstNumber(cfg, ['num_key_value_heads', 'n_kv_head']) ?? heads;
    const hidden = firstNumber(cfg, ['hidden_size', 'n_embd', 'd_model']);
    const headDim =
      meta.dim ??
      firstNumber(cfg, ['head_dim']) ??
      (hidden !== undefined && heads ? hidden / heads : undefined);
    if (!numKvHeads || !headDim || !Number.isInteger(numKvHeads) || !Number.isInteger(headDim)) {
      throw new ModelError(
        ModelErrorCode.BadConfig,
        `config.json: cannot tell the KV cache shape of ${file} (need num_key_value_heads/num_attention_heads ` +
          `and head_dim or hidden_size)`,
      );
    }
    const kvType = meta.type ?? 'float32';
    if (kvType !== 'float32' && kvType !== 'float16') {
      throw new ModelError(ModelErrorCode.BadLayout, `${file}: KV cache type ${kvType} is not supported`);
    }

    const ctxFromCfg = firstNumber(cfg, [
      'max_position_embeddings',
      'n_positions',
      'n_ctx',
      'max_sequence_length',
    ]);
    if (options.maxContext !== undefined) {
      if (
        !Number.isInteger(options.maxContext) ||
        options.maxContext < 1 ||
        options.maxContext > (ctxFromCfg ?? Infinity)
      ) {
        throw new ModelError(
          ModelErrorCode.BadArgument,
          `maxContext ${options.maxContext} must be an integer in [1, ${ctxFromCfg ?? 'any'}] for ${file}`,
        );
      }
    }
    const maxContext = options.maxContext ?? ctxFromCfg;
    if (!maxContext || !Number.isInteger(maxContext)) {
      throw new ModelError(
        ModelErrorCode.BadConfig,
        'config.json has none of max_position_embeddings, n_positions, n_ctx; pass maxContext',
      );
    }

    // Every end-of-turn token any of the three files names (config.json first: its first id is eosTokenId).
    // Chat models often list only <|endoftext|> in config.json and add <|im_end|> in generation_config.json or
    // tokenizer_config.json; an answer must stop on either.
    const idsOf = (raw: unknown): number[] =>
      Array.isArray(raw)
        ? raw.filter((x): x is number => Number.isInteger(x) && x >= 0)
        : Number.isInteger(raw) && (raw as number) >= 0
          ? [raw as number]
          : [];
    const eosTok = tokCfg.eos_token;
    const content =
      typeof eosTok === 'string' ? eosTok : (eosTok as { content?: string } | undefined)?.content;
    const tokCfgEos = content !== undefined ? tokenizer.tokenToId(content) : undefined;
    const eosTokenIds = [
      ...new Set([
        ...idsOf(cfg.eos_token_id),
        ...idsOf(genCfg.eos_token_id),
        ...(tokCfgEos !== undefined ? [tokCfgEos] : []),
      ]),
    ].filter((id) => id < tokenizer.size);
    if (eosTokenIds.length === 0) {
      throw new ModelError(
        ModelErrorCode.BadConfig,
        'neither config.json eos_token_id nor tokenizer_config.json eos_token names an end-of-sequence token',
      );
    }
    const bos = cfg.bos_token_id;

    const logitsMeta = tensorMeta(session.outputMetadata, layout.logits);
    const metaRows = logitsMeta?.shape[logitsMeta.shape.length - 1];
    const config: ModelConfig = {
      name:
        options.name ??
        (typeof cfg._name_or_path === 'string' && cfg._name_or_path ? cfg._name_or_path : undefined) ??
        (source.replace(/\/+$/, '').split('/').pop() || source),
      modelType: typeof cfg.model_type === 'string' ? cfg.model_type : 'unknown',
      vocabSize: tokenizer.size,
      logitsRows: typeof metaRows === 'number' ? metaRows : (firstNumber(cfg, ['vocab_size']) ?? 0),
      maxContext,
      eosTokenId: eosTokenIds[0],
      eosTokenIds,
      bosTokenId: typeof bos === 'number' ? bos : null,
      numLayers: layout.pastKeys.length,
      numKvHeads,
      headDim,
      kvType,
    };
    const batchGraph = async (threads?: number): Promise<BatchGraph> => {
      const names = layout.presentKeys.flatMap((k, i) => [k, layout.presentValues[i]]);
      const newKv = newKvTensors(bytes, names, file);
      try {
        const patched = withExtraOutputs(
          bytes,
          newKv.map((x) => x.name),
        );
        const opts =
          threads === undefined ? sessionOptions : { ...sessionOptions, intraOpNumThreads: threads };
        return { session: await options.ort.InferenceSession.create(patched, opts), newKv };
      } catch (e) {
        throw new ModelError(
          ModelErrorCode.LoadFailed,
          `${file}: the batched graph failed to load: ${errText(e)}`,
          {
            cause: e,
          },
        );
      }
    };
    const model = new LanguageModel(
      source,
      options.ort,
      session,
      layout,
      config,
      tokenizer,
      chatTemplate,
      batchGraph,
    );
    if (config.logitsRows <= 0) {
      config.logitsRows = await probeRows({
        ort: options.ort,
        session,
        layout,
        config,
        isDisposed: () => false,
      });
    }
    checkVocab(tokenizer, config.logitsRows, file);
    Object.freeze(config.eosTokenIds);
    Object.freeze(config);
    return model;
  } catch (e) {
    await session.release().catch(() => undefined);
    throw e;
  }
}

/**
 * Execution providers for a browser: WebGPU first when a real (non-fallback) adapter exists, else WASM only.
 * Software adapters (SwiftShader) are skipped unless `anyAdapter` (an explicit opt-in: tests, or a person who
 * wants the WebGPU path whatever it costs): ORT on them is far slower than WASM.
 */
export async function browserExecutionProviders(options: { anyAdapter?: boolean } = {}): Promise<string[]> {
  const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator?.gpu;
  if (!gpu) return ['wasm'];
  try {
    const adapter = (await gpu.requestAdapter()) as {
      isFallbackAdapter?: boolean;
      info?: { isFallbackAdapter?: boolean };
    } | null;
    if (!adapter) return ['wasm'];
    if (!options.anyAdapter && (adapter.isFallbackAdapter || adapter.info?.isFallbackAdapter))
      return ['wasm'];
    return ['webgpu', 'wasm'];
  } catch {
    return ['wasm'];
  }
}
