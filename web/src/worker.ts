/**
 * The draft model's Web Worker (exposed with comlink). RTCPeerConnection does not exist in Workers, so the
 * protocol runs on the page; this Worker only holds the drafter: the ONNX draft model on onnxruntime-web (WASM;
 * the WebGPU EP when a real adapter exists), or WebLLM when configured and WebGPU is there. Calls are serialised:
 * a ModelSession refuses overlapping calls and the page may post truncate() while a forward is running.
 */
import * as Comlink from 'comlink';
import {
  TextTokenizer,
  browserExecutionProviders,
  loadModel,
  type ModelLoader,
  type OrtModule,
  type TokenizerJson,
} from '@dssd/models';
import { SessionRng, type SamplingParams } from '@dssd/kernel';
import type { LmSession, ModelIdentity } from '@dssd/protocol';
import { identityOf } from '@dssd/protocol/settings';
import {
  chooseDrafter,
  createWebLlmSession,
  type DrafterKind,
  type GpuProbe,
  type WebLlmConfig,
} from './webllm-drafter.js';
import type { WebGpuChoice } from './settings.js';

export interface LoadRequest {
  /** Draft model folder (default /models/draft/, served by the edge). */
  modelUrl: string;
  /** ORT wasm files (default /ort/, served by the edge). */
  wasmPaths: string;
  webllm: WebLlmConfig | null;
  /** The draft's sampling (WebLLM's forcing processor needs it). */
  sampling: SamplingParams;
  seed: number | null;
  /** Where the ONNX draft runs (the page's `webgpu` option). */
  webgpu: WebGpuChoice;
}

/**
 * Loading steps. `download` is per file (`file`, its bytes so far and in all): the page adds up every file it
 * needs (model, ORT wasm, tokenizer), so the bar covers every byte, then `init` (compiling the wasm and the
 * session) and `warmup` (one forward pass) before `ready`.
 */
export interface LoadProgress {
  phase: 'download' | 'init' | 'warmup' | 'ready';
  file?: string;
  loaded: number;
  total: number;
  text: string;
}

export interface LoadResult {
  identity: ModelIdentity;
  drafter: DrafterKind;
  reason: string;
  executionProviders: string[];
  loadMs: number;
}

type Report = (file: string, loaded: number, total: number) => void;

/** Fetches `url` reporting bytes as they arrive (the page's progress bar); null on 404. */
async function fetchBytes(url: string, report: Report): Promise<Uint8Array | null> {
  const res = await fetch(url);
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`fetching ${url} returned HTTP ${res.status}`);
  const total = Number(res.headers.get('content-length') ?? 0);
  const file = url.split('/').pop() ?? url;
  report(file, 0, total); // the size counts as soon as it is known, so the total grows early, not at the end
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const parts: Uint8Array[] = [];
  let loaded = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.byteLength;
    report(file, loaded, Math.max(total, loaded));
  }
  const out = new Uint8Array(loaded);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}

const progressLoader = (report: Report): ModelLoader => ({ read: (url) => fetchBytes(url, report) });

/** The wasm binary onnxruntime-web/wasm loads (fetched here, so its bytes show on the bar). */
const ORT_WASM_FILE = 'ort-wasm-simd-threaded.wasm';

async function probeGpu(): Promise<GpuProbe> {
  const gpu = (navigator as { gpu?: { requestAdapter(): Promise<any> } }).gpu;
  if (!gpu) return { adapter: false, fallback: false };
  try {
    const a = await gpu.requestAdapter();
    if (!a) return { adapter: false, fallback: false };
    return {
      adapter: true,
      fallback: !!(a.isFallbackAdapter || a.info?.isFallbackAdapter),
      shaderF16: a.features?.has?.('shader-f16') ?? false,
    };
  } catch {
    return { adapter: false, fallback: false };
  }
}

/** The identity of the tokenizer at `url` (WebLLM's model must tokenize like the edge's; this is what we state). */
async function tokenizerIdentity(
  url: string,
  vocabSize: number,
  contextWindow: number,
): Promise<ModelIdentity> {
  const base = url.endsWith('/') ? url : url + '/';
  const [tok, cfg, tokCfg] = await Promise.all(
    ['tokenizer.json', 'config.json', 'tokenizer_config.json'].map(async (f) => {
      const r = await fetch(base + f);
      return r.ok ? ((await r.json()) as Record<string, unknown>) : {};
    }),
  );
  const t = new TextTokenizer(tok as TokenizerJson, tokCfg);
  const eos = typeof cfg.eos_token_id === 'number' ? cfg.eos_token_id : -1;
  return {
    tokenizerHash: t.hash,
    vocabSize,
    maxContext: contextWindow,
    eosTokenId: eos,
    name: 'webllm draft',
  };
}

let session: LmSession | null = null;
let queue: Promise<unknown> = Promise.resolve();

/** Runs `fn` after every earlier call has finished. */
function serial<T>(fn: () => Promise<T> | T): Promise<T> {
  const p = queue.then(fn);
  queue = p.catch(() => undefined);
  return p;
}

function needSession(): LmSession {
  if (!session) throw new Error('the draft model is not loaded');
  return session;
}

const api = {
  async load(req: LoadRequest, onProgress?: (p: LoadProgress) => void): Promise<LoadResult> {
    const t0 = performance.now();
    const gpu = await probeGpu();
    const choice = chooseDrafter(req.webllm, gpu);
    if (choice.kind === 'webllm' && req.webllm) {
      // The forcing processor's own draws (what WebLLM believes it sampled) are seeded too, for reproducibility.
      const rr = new SessionRng(req.seed ?? 1).round(0xffff, 0);
      let k = 0;
      const s = await createWebLlmSession(
        req.webllm,
        req.sampling,
        () => rr.draft((k++ % 250) + 1),
        (p) =>
          onProgress?.({
            phase: p.progress < 1 ? 'download' : 'init',
            file: 'webllm', // one entry: WebLLM reports a fraction, not bytes
            loaded: p.progress,
            total: 1,
            text: p.text,
          }),
      );
      session = s;
      const identity = await tokenizerIdentity(
        req.modelUrl,
        req.webllm.vocabSize,
        req.webllm.contextWindowSize ?? 2048,
      );
      onProgress?.({ phase: 'ready', loaded: 1, total: 1, text: 'ready' });
      return {
        identity,
        drafter: 'webllm',
        reason: choice.reason,
        executionProviders: ['webgpu'],
        loadMs: performance.now() - t0,
      };
    }
    const eps =
      req.webgpu === 'off' ? ['wasm'] : await browserExecutionProviders({ anyAdapter: req.webgpu === 'any' });
    // The jsep build (WebGPU) is twice the size: load it only when WebGPU will be used.
    const ort = (eps.includes('webgpu')
      ? await import('onnxruntime-web')
      : await import('onnxruntime-web/wasm')) as unknown as OrtModule & {
      env: { wasm: { wasmPaths?: string; numThreads?: number } };
    };
    ort.env.wasm.wasmPaths = req.wasmPaths; // required after bundling, before the first session
    ort.env.wasm.numThreads = 1; // threads gave no speed-up on small models and need cross-origin isolation
    const report: Report = (file, loaded, total) =>
      onProgress?.({ phase: 'download', file, loaded, total, text: `downloading ${file}` });
    // The wasm (14 MB, the largest download) is fetched here in parallel with the model, and handed to ORT, so
    // the bar counts it; the WebGPU build picks its own variant and fetches it itself.
    const wasm = eps.includes('webgpu')
      ? null
      : fetchBytes(new URL(ORT_WASM_FILE, req.wasmPaths).toString(), report);
    const wasmReady = (async () => {
      const bin = await wasm;
      if (bin) (ort.env.wasm as { wasmBinary?: Uint8Array }).wasmBinary = bin;
    })();
    // ORT starts its wasm with the first session: hold that back until the binary is here (no second fetch).
    // Called once the model's bytes are in, so after it every byte is.
    const create: OrtModule['InferenceSession']['create'] = async (...a: unknown[]) => {
      await wasmReady;
      onProgress?.({ phase: 'init', loaded: 1, total: 1, text: 'compiling the draft model' });
      return (ort.InferenceSession.create as (...b: unknown[]) => ReturnType<typeof create>)(...a);
    };
    const model = await loadModel(req.modelUrl, {
      ort: { Tensor: ort.Tensor, InferenceSession: { ...ort.InferenceSession, create } as never },
      loader: progressLoader(report),
      executionProviders: eps,
    });
    // onnxruntime-web compiles float16 tensors to WGSL `f16`, which needs the adapter's shader-f16 feature; without
    // it the shaders fail to compile and every logit comes back NaN, so refuse with the reason instead.
    if (eps[0] === 'webgpu' && model.config.kvType === 'float16' && !gpu.shaderF16) {
      await model.dispose();
      throw new Error(
        `${model.config.name} has float16 tensors (KV cache ${model.config.kvType}) but this WebGPU adapter has no ` +
          `shader-f16 feature, which onnxruntime-web's WebGPU kernels need for them; use a float32 export of the ` +
          `draft on this adapter, or webgpu=off (WASM)`,
      );
    }
    session = model.createSession();
    onProgress?.({ phase: 'warmup', loaded: 1, total: 1, text: 'warming up the draft model' });
    // One pass now, so the first answer does not pay for the lazy parts of ORT's first run.
    await session.forward([0]);
    session.truncate(0);
    const c = model.config;
    onProgress?.({ phase: 'ready', loaded: 1, total: 1, text: 'ready' });
    return {
      identity: identityOf(model),
      drafter: 'onnx',
      reason:
        `${choice.reason}, ${eps[0]} execution provider` +
        (eps[0] === 'webgpu' && gpu.fallback ? ' (software adapter)' : ''),
      executionProviders: eps,
      loadMs: performance.now() - t0,
    };
  },

  /** Forwards tokens; returns the logits rows as one flat, transferred buffer. */
  forward(ids: number[]): Promise<Float32Array> {
    return serial(async () => {
      const rows = await needSession().forward(ids);
      const V = rows[0]?.length ?? 0;
      // Rows may be views into one ORT buffer: copy into a fresh one before transferring it.
      const flat = new Float32Array(rows.length * V);
      rows.forEach((r, i) => flat.set(r, i * V));
      return Comlink.transfer(flat, [flat.buffer]);
    });
  },

  truncate(n: number): Promise<void> {
    return serial(() => needSession().truncate(n));
  },
};

export type DraftWorkerApi = typeof api;

Comlink.expose(api);
