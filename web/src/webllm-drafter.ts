/**
 * The WebLLM drafter: an MLC-compiled draft model run by @mlc-ai/web-llm on WebGPU, behind the same LmSession
 * interface as the ONNX drafter. WebLLM exposes full logits only to a LogitProcessor registered where its engine
 * lives (here: inside our Worker), and it has no KV-cache rollback. So:
 *  - ForcingLogitProcessor keeps a copy of the raw logits (the row handed to DeviceSession, which processes it
 *    with @dssd/kernel's processLogits and draws x with its seeded per-round uniforms: Q and q are exact), draws
 *    its own token from the same processed distribution and returns logits that force it (−Infinity elsewhere),
 *    so that WebLLM's own sampler (temperature, top-p, penalties, logit bias) cannot move anything;
 *  - WebLlmSession re-prefills the kept prefix after a truncation (a rejection), since WebLLM cannot drop
 *    KV entries.
 * Nothing here imports web-llm at module load: createWebLlmSession loads it on demand.
 */
import { processLogits, sampleFrom, type SamplingParams } from '@dssd/kernel';
import type { LmSession } from '@dssd/protocol';

export type DrafterErrorCode = 'BadConfig' | 'NoWebGpu' | 'LoadFailed' | 'VocabMismatch';

export class DrafterError extends Error {
  override readonly name = 'DrafterError';
  constructor(
    readonly code: DrafterErrorCode,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}

/** How a page configures the WebLLM drafter (all URLs absolute after validation). */
export interface WebLlmConfig {
  /** Folder of the MLC weights (mlc-chat-config.json, tensor-cache.json, shards, tokenizer files). */
  modelUrl: string;
  /** The TVM-compiled model library (`*-webgpu.wasm`) for that model. */
  modelLibUrl: string;
  /** Any id; it keys the LogitProcessor registry. */
  modelId: string;
  /**
   * The edge model's vocabulary size: the MLC model's logits must have at least this many entries (MLC pads).
   * 0 = the size of the tokenizer the page loaded from the edge.
   */
  vocabSize: number;
  /** Context the MLC model was compiled for (default 2048). */
  contextWindowSize?: number;
}

/**
 * Checks a WebLLM configuration (from the page's query or the widget's attributes). Relative URLs are resolved
 * against `base` (the page), because web-llm calls `new URL(model)` without a base and appends `resolve/main/`
 * unless the URL already has `/resolve/<rev>/`.
 */
export function validateWebLlmConfig(x: unknown, base: string): WebLlmConfig {
  const bad = (m: string): never => {
    throw new DrafterError('BadConfig', `WebLLM drafter: ${m}`);
  };
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad('configuration must be an object');
  const o = x as Record<string, unknown>;
  const url = (key: string, suffix?: RegExp): string => {
    const v = o[key];
    if (typeof v !== 'string' || v.trim() === '') return bad(`${key} is required`);
    let u: URL;
    try {
      u = new URL(v, base);
    } catch {
      return bad(`${key} is not a URL: ${JSON.stringify(v)}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') return bad(`${key} must be an http(s) URL`);
    if (suffix && !suffix.test(u.pathname)) return bad(`${key} must point at ${suffix.source}`);
    return u.toString();
  };
  const modelUrl = url('modelUrl');
  const modelLibUrl = url('modelLibUrl', /\.wasm$/);
  const modelId = o.modelId ?? 'dssd-draft';
  if (typeof modelId !== 'string' || !/^[A-Za-z0-9._-]{1,128}$/.test(modelId))
    bad('modelId must be 1–128 characters of A–Z, a–z, 0–9, dot, underscore or dash');
  const vocabSize = o.vocabSize ?? 0;
  if (typeof vocabSize !== 'number' || !Number.isInteger(vocabSize) || (vocabSize !== 0 && vocabSize < 2))
    bad('vocabSize (the edge model’s vocabulary size) must be an integer ≥ 2, or 0 for the tokenizer’s size');
  const cfg: WebLlmConfig = {
    modelUrl: modelUrl.endsWith('/') ? modelUrl : modelUrl + '/',
    modelLibUrl,
    modelId: modelId as string,
    vocabSize: vocabSize as number,
  };
  if (o.contextWindowSize !== undefined) {
    const c = o.contextWindowSize;
    if (typeof c !== 'number' || !Number.isInteger(c) || c < 16)
      bad('contextWindowSize must be an integer ≥ 16');
    cfg.contextWindowSize = c as number;
  }
  return cfg;
}

/**
 * Reads a WebLLM configuration from a page query (`webllmModel`, `webllmLib`, optional `webllmId`,
 * `webllmVocab`, `webllmContext`); null when neither URL is given.
 */
export function webLlmConfigFromQuery(search: string, base: string): WebLlmConfig | null {
  const q = new URLSearchParams(search);
  if (!q.get('webllmModel') && !q.get('webllmLib')) return null;
  const n = (k: string) => (q.get(k) === null ? undefined : Number(q.get(k)));
  return validateWebLlmConfig(
    {
      modelUrl: q.get('webllmModel'),
      modelLibUrl: q.get('webllmLib'),
      modelId: q.get('webllmId') ?? undefined,
      vocabSize: n('webllmVocab'),
      contextWindowSize: n('webllmContext'),
    },
    base,
  );
}

export type DrafterKind = 'onnx' | 'webllm';

export interface DrafterChoice {
  kind: DrafterKind;
  /** Why, for the page's status line. */
  reason: string;
}

/** What the Worker found out about WebGPU. */
export interface GpuProbe {
  /** navigator.gpu exists and requestAdapter() gave an adapter. */
  adapter: boolean;
  /** The adapter is a software fallback (SwiftShader). */
  fallback: boolean;
  /** The adapter supports shader-f16 (needed by q4f16 models). */
  shaderF16?: boolean;
}

/**
 * The drafter switch: WebLLM only when it is configured and a WebGPU adapter exists; the ONNX drafter otherwise
 * (and always when nothing is configured). A software adapter is allowed for WebLLM when `allowFallback` is set
 * (functional tests); it is far too slow to be useful.
 */
export function chooseDrafter(
  config: WebLlmConfig | null,
  gpu: GpuProbe,
  opts: { allowFallback?: boolean } = {},
): DrafterChoice {
  if (!config) return { kind: 'onnx', reason: 'ONNX draft model (onnxruntime-web)' };
  if (!gpu.adapter)
    return {
      kind: 'onnx',
      reason: 'WebLLM is configured but this browser has no WebGPU adapter; using ONNX',
    };
  if (gpu.fallback && !opts.allowFallback)
    return { kind: 'onnx', reason: 'WebLLM is configured but WebGPU is software-only here; using ONNX' };
  return { kind: 'webllm', reason: `WebLLM draft model ${config.modelId} on WebGPU` };
}

/**
 * WebLLM chat options under which a forcing logits vector decides the sampled token: no penalties, no bias,
 * neutral temperature and top-p. (−Infinity stays −Infinity under any of them anyway; this keeps WebLLM from
 * spending time on them.)
 */
export const FORCING_CHAT_OPTIONS = {
  temperature: 1,
  top_p: 1,
  repetition_penalty: 1,
  frequency_penalty: 0,
  presence_penalty: 0,
} as const;

/** One processed step, as recorded by the processor. */
export interface ProcessedStep {
  /** The raw logits WebLLM produced (first vocabSize entries, copied). */
  logits: Float32Array;
  /** The processed draft distribution. */
  Q: Float32Array;
  /** The token the processor forced. */
  token: number;
  /** Q(token). */
  q: number;
}

/** Logits where only `token` is finite: any softmax, temperature, top-p or additive penalty keeps it at 1. */
export function forcingLogits(length: number, token: number): Float32Array {
  const out = new Float32Array(length).fill(-Infinity);
  out[token] = 0;
  return out;
}

/**
 * web-llm's LogitProcessor (processLogits / processSampledToken / resetState), sampling in JS from the processed
 * distribution with uniforms from `draw` (seeded by the owner), so q and Q are exact.
 */
export class ForcingLogitProcessor {
  last: ProcessedStep | null = null;
  /** Tokens WebLLM reported as sampled since the last reset (each must equal the forced one). */
  readonly sampled: number[] = [];
  private mismatch: string | null = null;

  constructor(
    readonly vocabSize: number,
    public sampling: SamplingParams,
    private readonly draw: () => number,
  ) {}

  processLogits(logits: Float32Array): Float32Array {
    if (logits.length < this.vocabSize) {
      throw new DrafterError(
        'VocabMismatch',
        `the WebLLM model produced ${logits.length} logits; the edge's vocabulary has ${this.vocabSize}`,
      );
    }
    // Padded vocabularies (MLC rounds up) are cut to the tokenizer's size; the padding is never sampled.
    const raw = Float32Array.from(logits.subarray(0, this.vocabSize));
    const Q = processLogits(raw, this.sampling);
    const token = sampleFrom(Q, this.draw());
    this.last = { logits: raw, Q, token, q: Q[token] };
    return forcingLogits(logits.length, token);
  }

  processSampledToken(token: number): void {
    this.sampled.push(token);
    if (this.last && token !== this.last.token && !this.mismatch)
      this.mismatch = `WebLLM sampled ${token} where ${this.last.token} was forced`;
  }

  resetState(): void {
    this.last = null;
    this.sampled.length = 0;
  }

  /** Throws if WebLLM ever sampled something other than the forced token (its sampler moved it). */
  check(): void {
    if (this.mismatch) throw new DrafterError('LoadFailed', this.mismatch);
  }
}

/** The part of web-llm's MLCEngine the session drives. */
export interface WebLlmEngineLike {
  forwardTokensAndSample(inputIds: number[], isPrefill: boolean): Promise<number>;
  resetChat(keepStats?: boolean): Promise<void>;
}

/**
 * LmSession over a WebLLM engine. forward() returns only the LAST row (WebLLM computes logits for the last
 * input token only); DeviceSession drafts from the last row, so that is all it needs. After truncate() below
 * the cached length the next forward resets the chat and prefills the kept prefix plus the new tokens.
 */
export class WebLlmSession implements LmSession {
  private readonly tokens: number[] = [];
  /** Tokens actually in WebLLM's KV cache (a prefix of `tokens` or everything). */
  private cached = 0;
  private stale = false;
  /** Re-prefills done (statistics, tests). */
  reprefills = 0;
  forwards = 0;

  constructor(
    private readonly engine: WebLlmEngineLike,
    readonly processor: ForcingLogitProcessor,
  ) {}

  get length(): number {
    return this.tokens.length;
  }

  async forward(toks: number[]): Promise<Float32Array[]> {
    if (toks.length === 0) throw new DrafterError('LoadFailed', 'forward needs at least one token');
    let feed: number[];
    let prefill: boolean;
    if (this.stale) {
      await this.engine.resetChat(true);
      this.processor.resetState();
      this.cached = 0;
      this.stale = false;
      this.reprefills++;
      feed = this.tokens.concat(toks);
      prefill = true;
    } else {
      feed = toks;
      prefill = this.cached === 0 || toks.length > 1;
    }
    this.processor.last = null;
    await this.engine.forwardTokensAndSample(feed, prefill);
    this.forwards++;
    this.processor.check();
    const step = this.processor.last as ProcessedStep | null;
    if (!step) throw new DrafterError('LoadFailed', 'WebLLM did not call the logit processor');
    this.tokens.push(...toks);
    this.cached = this.tokens.length;
    return [step.logits];
  }

  truncate(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.tokens.length)
      throw new DrafterError('LoadFailed', `cannot truncate ${this.tokens.length} tokens to ${n}`);
    if (n === this.tokens.length) return;
    this.tokens.length = n;
    // No KV rollback in WebLLM: rebuild from the kept prefix on the next forward.
    this.stale = true;
  }
}

/** Loads web-llm (on demand) and an engine with the forcing processor registered; returns the session. */
export async function createWebLlmSession(
  config: WebLlmConfig,
  sampling: SamplingParams,
  draw: () => number,
  onProgress?: (p: { progress: number; text: string }) => void,
): Promise<WebLlmSession> {
  const webllm = await import('@mlc-ai/web-llm');
  const processor = new ForcingLogitProcessor(config.vocabSize, sampling, draw);
  let engine: WebLlmEngineLike;
  try {
    engine = (await webllm.CreateMLCEngine(
      config.modelId,
      {
        appConfig: {
          model_list: [
            {
              model: config.modelUrl,
              model_id: config.modelId,
              model_lib: config.modelLibUrl,
              overrides: config.contextWindowSize
                ? { context_window_size: config.contextWindowSize }
                : undefined,
            },
          ],
        },
        logitProcessorRegistry: new Map([[config.modelId, processor]]),
        initProgressCallback: (r: { progress: number; text: string }) =>
          onProgress?.({ progress: r.progress, text: r.text }),
      },
      FORCING_CHAT_OPTIONS,
    )) as unknown as WebLlmEngineLike;
  } catch (e) {
    throw new DrafterError('LoadFailed', `WebLLM could not load ${config.modelId}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return new WebLlmSession(engine, processor);
}
