/**
 * The browser device on the page's main thread: the protocol (DeviceSession over connectEdge's WebRTC data
 * channel, which Workers cannot open) plus a proxy for the draft model in the Worker. Used by the chat page and
 * the widget's embed page.
 */
import * as Comlink from 'comlink';
import {
  ProtocolError,
  ProtocolErrorCode,
  edgeChannel,
  openDevice,
  type DeviceSession,
  type LmSession,
  type TokenEvent,
  type TurnResult,
} from '@dssd/protocol';
import { ChatTemplate, TextTokenizer, chatTemplateFrom, type TokenizerJson } from '@dssd/models';
import type { DraftWorkerApi, LoadProgress, LoadResult } from './worker.js';
import { toDeviceSettings, type UiSettings, type WebGpuChoice } from './settings.js';
import type { WebLlmConfig } from './webllm-drafter.js';

/** Errors the page shows; `code` picks the message's wording. */
export type DeviceErrorCode =
  | 'NoWebRTC'
  | 'NoWorker'
  | 'ModelLoad'
  | 'Unreachable'
  | 'Refused'
  | 'ConnectionLost'
  | 'Timeout'
  | 'Generation';

export class DeviceError extends Error {
  override readonly name = 'DeviceError';
  constructor(
    readonly code: DeviceErrorCode,
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}

/** LmSession on the main thread that forwards to the Worker; mirrors `length` so DeviceSession can read it. */
export class WorkerDrafter implements LmSession {
  length = 0;
  constructor(
    private readonly api: Comlink.Remote<DraftWorkerApi>,
    private readonly vocabSize: number,
  ) {}

  async forward(tokens: number[]): Promise<Float32Array[]> {
    const before = this.length;
    this.length += tokens.length;
    let flat: Float32Array;
    try {
      flat = await this.api.forward(tokens);
    } catch (e) {
      this.length = before;
      throw e;
    }
    const V = this.vocabSize;
    const rows: Float32Array[] = [];
    for (let i = 0; i < flat.length / V; i++) rows.push(flat.subarray(i * V, (i + 1) * V));
    return rows;
  }

  truncate(n: number): void {
    if (n === this.length) return;
    this.length = n;
    // Ordered after any earlier call by the Worker's queue; a failure surfaces on the next forward.
    void this.api.truncate(n).catch(() => undefined);
  }
}

export interface BrowserDeviceOptions {
  /** The edge's base URL (the page's own origin when it is served by the edge). */
  edge: string;
  token?: string;
  workerUrl: string | URL;
  modelUrl?: string;
  wasmPaths?: string;
  webllm?: WebLlmConfig | null;
  /** Where the ONNX draft runs (default auto: WebGPU on a hardware adapter only). */
  webgpu?: WebGpuChoice;
  onProgress?: (p: LoadProgress) => void;
  /**
   * Reconnect (new signaling, new peer connection) and resume the session with its id and resume secret when the
   * channel drops mid-answer; this many attempts per turn (0: off). Default 3.
   */
  reconnectAttempts?: number;
  /** Opt-in: finish an answer with the draft model alone while the edge is unreachable ('unverified' tokens). */
  offlineFallback?: boolean;
}

function hasWebRtc(): boolean {
  return typeof (globalThis as { RTCPeerConnection?: unknown }).RTCPeerConnection === 'function';
}

/** Turns a protocol failure into the page's wording. */
export function explain(e: unknown, edge: string): DeviceError {
  if (e instanceof DeviceError) return e;
  if (e instanceof ProtocolError) {
    switch (e.code) {
      case ProtocolErrorCode.Closed:
        if (e.reason === 'reconnectFailed')
          return new DeviceError(
            'ConnectionLost',
            `The connection to the edge was lost and reconnecting failed (${e.message}).`,
            { cause: e },
          );
        return e.reason === 'unreachable'
          ? new DeviceError('Unreachable', `Cannot reach the edge at ${edge}. Is it running?`, { cause: e })
          : new DeviceError('ConnectionLost', `The connection to the edge was lost (${e.message}).`, {
              cause: e,
            });
      case ProtocolErrorCode.Timeout:
        return new DeviceError('Timeout', `The edge did not answer in time: ${e.message}`, { cause: e });
      case ProtocolErrorCode.Aborted:
        return new DeviceError('Generation', 'Stopped.', { cause: e });
      default:
        if (
          e.remote ||
          e.code === ProtocolErrorCode.Unauthorized ||
          e.code === ProtocolErrorCode.TooManySessions
        )
          return new DeviceError('Refused', `The edge refused the session (${e.code}): ${e.message}`, {
            cause: e,
          });
        return new DeviceError('Generation', `${e.code}: ${e.message}`, { cause: e });
    }
  }
  return new DeviceError('Generation', (e as Error)?.message ?? String(e), { cause: e });
}

export class BrowserDevice {
  tokenizer!: TextTokenizer;
  /** The model's chat template (tokenizer_config.json), or null: then the page continues plain text. */
  chat: ChatTemplate | null = null;
  info!: LoadResult;
  session: DeviceSession | null = null;
  private api!: Comlink.Remote<DraftWorkerApi>;
  private worker!: Worker;
  private drafter!: WorkerDrafter;
  private sessionKey = '';

  private constructor(readonly opts: BrowserDeviceOptions) {}

  /** Checks the browser, starts the Worker, loads the tokenizer and the draft model (with progress). */
  static async create(opts: BrowserDeviceOptions, settings: UiSettings): Promise<BrowserDevice> {
    if (!hasWebRtc())
      throw new DeviceError(
        'NoWebRTC',
        'This browser has no WebRTC (RTCPeerConnection), which the device needs to talk to the edge.',
      );
    if (typeof Worker !== 'function')
      throw new DeviceError('NoWorker', 'This browser cannot run Web Workers, which hold the draft model.');
    const d = new BrowserDevice(opts);
    const modelUrl = new URL(opts.modelUrl ?? '/models/draft/', opts.edge).toString();
    try {
      d.worker = new Worker(opts.workerUrl, { type: 'module' });
      d.api = Comlink.wrap<DraftWorkerApi>(d.worker);
      const [tok, tokCfg] = await Promise.all(
        ['tokenizer.json', 'tokenizer_config.json'].map(async (f) => {
          const r = await fetch(modelUrl + f);
          if (!r.ok && f === 'tokenizer.json') throw new Error(`${modelUrl}${f}: HTTP ${r.status}`);
          if (!r.ok) return {};
          // The tokenizer's bytes count on the loading bar like the Worker's files.
          const total = Number(r.headers.get('content-length') ?? 0);
          opts.onProgress?.({ phase: 'download', file: 'page:' + f, loaded: 0, total, text: f });
          const text = await r.text();
          const n = Math.max(total, text.length);
          opts.onProgress?.({ phase: 'download', file: 'page:' + f, loaded: n, total: n, text: f });
          return JSON.parse(text) as Record<string, unknown>;
        }),
      );
      d.tokenizer = new TextTokenizer(tok as TokenizerJson, tokCfg);
      d.chat = chatTemplateFrom(tokCfg);
      const sampling = { temperature: settings.temperature, topK: settings.topK, topP: settings.topP };
      d.info = await d.api.load(
        {
          modelUrl,
          wasmPaths: new URL(opts.wasmPaths ?? '/ort/', opts.edge).toString(),
          webllm: opts.webllm
            ? { ...opts.webllm, vocabSize: opts.webllm.vocabSize || d.tokenizer.size }
            : null,
          sampling,
          seed: settings.seed,
          webgpu: opts.webgpu ?? 'auto',
        },
        Comlink.proxy((p: LoadProgress) => opts.onProgress?.(p)),
      );
    } catch (e) {
      d.worker?.terminate();
      throw new DeviceError('ModelLoad', `The draft model could not be loaded: ${(e as Error).message}`, {
        cause: e,
      });
    }
    d.drafter = new WorkerDrafter(d.api, d.info.identity.vocabSize);
    return d;
  }

  /** Whether a turn with these settings continues the current session (else it opens a new one). */
  sameSession(settings: UiSettings): boolean {
    return this.connected && this.sessionKey === BrowserDevice.key(settings);
  }

  private static key(settings: UiSettings): string {
    return JSON.stringify({ ...settings, maxTokens: 0 });
  }

  /** The context both sides can hold (the session's once connected; the draft's before). */
  get maxContext(): number {
    return this.session?.maxContext ?? this.info.identity.maxContext;
  }

  /** Tokens of the conversation both sides hold (0 without a session). */
  get used(): number {
    return this.connected ? this.session!.history.length : 0;
  }

  /** Opens a session with these settings, reusing the current one when the settings are unchanged. */
  async connect(settings: UiSettings): Promise<DeviceSession> {
    const key = BrowserDevice.key(settings);
    if (this.session && this.sessionKey === key && !this.closed) return this.session;
    this.disconnect();
    const { settings: s, adaptiveGamma } = toDeviceSettings(settings);
    const attempts = this.opts.reconnectAttempts ?? 3;
    // A new conversation: the Worker's cache holds the previous one.
    this.drafter.truncate(0);
    try {
      this.session = await openDevice({
        channel: edgeChannel({ url: this.opts.edge, token: this.opts.token }),
        onTransport: (t) => {
          this.closed = false;
          t.onClose(() => (this.closed = true));
        },
        model: this.info.identity,
        drafter: s.mode === 'ar' ? undefined : this.drafter,
        settings: s,
        adaptiveGamma,
        ...(attempts > 0 ? { recovery: { maxAttempts: attempts, backoffMs: 200 } } : {}),
        offlineFallback: this.opts.offlineFallback ?? false,
      });
    } catch (e) {
      throw explain(e, this.opts.edge);
    }
    this.sessionKey = key;
    return this.session;
  }

  private closed = false;

  get connected(): boolean {
    return !!this.session && !this.closed;
  }

  /** Runs one turn (connecting first when needed). */
  async generate(
    prompt: number[],
    settings: UiSettings,
    onTokens: (ev: TokenEvent) => void,
    signal: AbortSignal,
    maxNewTokens = settings.maxTokens,
  ): Promise<TurnResult> {
    const session = await this.connect(settings);
    try {
      return await session.generate(prompt, { maxNewTokens, onTokens, signal });
    } catch (e) {
      const err = explain(e, this.opts.edge);
      if (err.code === 'ConnectionLost' || err.code === 'Timeout') this.disconnect();
      throw err;
    }
  }

  disconnect(): void {
    try {
      this.session?.close();
    } catch {
      // already closed
    }
    this.session = null;
    this.sessionKey = '';
  }

  dispose(): void {
    this.disconnect();
    this.worker.terminate();
  }
}
