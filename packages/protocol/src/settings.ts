/**
 * The settings home: every mode, codec, default and bound of a session and of an edge, the emulated-cost
 * presets, the parsing of settings from strings (CLI flags, URL query, widget attributes), and the validation of
 * the hello/welcome bodies. The CLI help, the page's form and the edge's limits are all generated from here.
 */
import { validateSamplingParams, validateSeed, type SamplingParams } from '@dssd/kernel';
import { MAX_GAMMA, draftFrameSize, dsdDraftFrameSize, turnFrameSize } from '@dssd/codec';
import { ProtocolError, ProtocolErrorCode } from './errors.js';

/** 2: pipelined drafting (`pipeline` in the hello, the `accepted` verdict). 3: the exact 'grid' body (tag 7). */
export const PROTOCOL_VERSION = 3;

// ---------------------------------------------------------------------------------------------------------------
// Modes and codecs
// ---------------------------------------------------------------------------------------------------------------

/** ar: edge-only decoding streamed to a thin client; dsd: full Q's uplink; dssd: the split protocol. */
export type Mode = 'ar' | 'dsd' | 'dssd';
export const MODES: readonly Mode[] = ['ar', 'dsd', 'dssd'];

/** Downlink encodings of P_j, with whether the output law stays exact. */
export const CODECS = {
  auto: { exact: true, summary: 'smallest exact encoding of P_j' },
  f32: { exact: true, summary: 'dense float32' },
  f16: { exact: false, summary: 'dense float16 (near-lossless)' },
  sparse: { exact: true, summary: 'nonzero entries only' },
  grid: { exact: true, summary: 'entries on the 2^-24 grid, entropy-coded' },
  topk: { exact: false, summary: 'top-k entries (lossy)' },
  candidates: { exact: true, summary: 'K draws from P_j, full P_j on request' },
} as const satisfies Record<string, { exact: boolean; summary: string }>;
export type DownlinkCodec = keyof typeof CODECS;
export const DOWNLINK_CODECS = Object.keys(CODECS) as DownlinkCodec[];
export const LOSSY_CODECS = DOWNLINK_CODECS.filter((c) => !CODECS[c].exact);

export type DsdPrecision = 'f32' | 'f16';
export const DSD_PRECISIONS: readonly DsdPrecision[] = ['f32', 'f16'];

// ---------------------------------------------------------------------------------------------------------------
// Bounds and defaults
// ---------------------------------------------------------------------------------------------------------------

/**
 * Draft length. `max` is the edge's default limit and the device's own bound (so a device refuses γ above it
 * before connecting); `ceiling` is the most any edge may be configured to accept (--max-gamma); `auto` is the
 * upper bound adaptive γ starts from.
 */
export const GAMMA = { default: 4, min: 1, max: 16, ceiling: 32, auto: 8 } as const;

/**
 * Pipelined drafting: the device keeps at most `window` unverified tokens in flight (default: this many blocks of
 * γ), in blocks of up to γ. Three blocks, not two: a verdict takes RTT + one pass (≈ 42 ms at RTT 20 ms with a
 * 32B target on an H200) and two blocks of 3 browser drafts (7 ms each) only just cover it, so the device stalls
 * on every jitter; the kernel's pipelined model gives ×1.12 over serial with two blocks, ×1.18 with three, and
 * nothing more with four (α 0.75), while wasted drafts grow with the window.
 */
export const PIPELINE = { windowBlocks: 3, maxWindow: 256 } as const;

/**
 * The candidates codec: bounds of K; K while too few trial reports have arrived (or when the device sets none);
 * and the price, in bytes, of a fall-back's extra round trip when choosing K (20 ms at 50 Mbit/s).
 */
export const CANDIDATES = { min: 1, max: 1024, initialK: 32, fallbackRoundTripBytes: 125_000 } as const;
/** K of the lossy topk codec. */
export const TOPK_CODEC = { default: 20, max: 1 << 20 } as const;

/** Timeouts a device uses (ms): opening the WebRTC connection, and waiting for any edge frame. */
export const DEVICE_TIMEOUTS = { connectMs: 15_000, answerMs: 30_000 } as const;

/**
 * WebRTC stacks for Node (the edge, Node devices, drills, benchmarks; browsers bring their own):
 * `wrtc` is @roamhq/wrtc (libwebrtc), `datachannel` is node-datachannel (libdatachannel). The default is chosen
 * by measurement (docs/capacity.md, "WebRTC stack"); both stay supported and tested.
 */
export const WEBRTC_STACKS = ['wrtc', 'datachannel'] as const;
export type WebrtcStack = (typeof WEBRTC_STACKS)[number];

/** Parses a --webrtc value (typed error naming the choices). */
export function parseWebrtcStack(v: string): WebrtcStack {
  if ((WEBRTC_STACKS as readonly string[]).includes(v)) return v as WebrtcStack;
  throw new ProtocolError(
    ProtocolErrorCode.BadSettings,
    `WebRTC stack must be one of ${WEBRTC_STACKS.join(', ')}, got ${JSON.stringify(v)}`,
  );
}

/** The only rule for edge-only decoding: it drafts nothing. */
export function gammaFor(mode: Mode, gamma: number): number {
  return mode === 'ar' ? 0 : gamma;
}

export interface SessionSettings {
  mode: Mode;
  codec: DownlinkCodec;
  /** Largest draft length per round (the device may draft fewer, e.g. adaptive γ or the context end). */
  gamma: number;
  /** The target's sampling: P is processed with these everywhere (edge acceptance, bonus, residual, ar). */
  sampling: SamplingParams;
  /** The draft's own sampling (may differ: losslessness only needs q and the residual to use the sampled Q). */
  draftSampling: SamplingParams;
  /** Session seed: makes every uniform reproducible. Without it each side uses a secret seed of its own. */
  seed?: number;
  /** DSD uplink precision: f32 (exact) or f16 (the compact variant, lossy). */
  dsdPrecision: DsdPrecision;
  /** K for the lossy topk codec. */
  topK: number;
  /** Candidate count for the candidates codec, or 'auto' (adapts K to the observed acceptance). */
  candidates: number | 'auto';
  /**
   * DSSD only: draft ahead while verdicts are in flight, in blocks of up to γ, at most `window` unverified tokens
   * (0: PIPELINE.windowBlocks·γ). Blocks end without a bonus token.
   */
  pipeline: boolean;
  window: number;
}

const GREEDY_OFF: SamplingParams = { temperature: 1, topK: 0, topP: 1 };

/**
 * The default codec is `candidates` with K adapted (`candidates: 'auto'`): its chooser sends K exact candidates or,
 * when that is cheaper in expectation, P_j in its smallest exact encoding; so it is never larger than `auto` on
 * average, and at |V| = 151,936 `auto` alone puts tens of KB down per rejection.
 */
export const DEFAULT_SETTINGS: Readonly<SessionSettings> = Object.freeze({
  mode: 'dssd',
  codec: 'candidates',
  gamma: GAMMA.default,
  sampling: GREEDY_OFF,
  draftSampling: GREEDY_OFF,
  dsdPrecision: 'f32',
  topK: TOPK_CODEC.default,
  candidates: 'auto',
  pipeline: false,
  window: 0,
});

/** What an edge enforces per session. */
export interface EdgeLimits {
  maxGamma: number;
  /** Longest history (prompt + generated) a session may hold; also capped by the model's context. */
  maxContext: number;
  /** Longest single prompt (tokens in one turn frame). */
  maxPromptTokens: number;
  maxNewTokens: number;
  /** Largest reassembled frame accepted. */
  maxFrameBytes: number;
  allowedModes: readonly Mode[];
  allowedCodecs: readonly DownlinkCodec[];
  /** Verify rounds (draft and turn frames) a session may start per second; more get RateLimited errors. */
  maxRoundsPerSecond: number;
}

export const DEFAULT_EDGE_LIMITS: Readonly<EdgeLimits> = Object.freeze({
  maxGamma: GAMMA.max,
  maxContext: 1 << 20,
  maxPromptTokens: 1 << 16,
  maxNewTokens: 1 << 16,
  maxFrameBytes: 64 * 1024 * 1024,
  allowedModes: MODES,
  allowedCodecs: DOWNLINK_CODECS,
  maxRoundsPerSecond: 1000,
});

/**
 * The largest frame a device may legally send in a session with these settings (headers included): its turn
 * frame at the prompt limit, its draft at the agreed γ (with the piggybacked token and a trial report), or its DSD draft with every
 * Q_i at the agreed precision; never above the edge's --max-frame-bytes.
 */
export function maxUplinkFrameBytes(s: SessionSettings, vocabSize: number, limits: EdgeLimits): number {
  const sizes = [
    turnFrameSize(limits.maxPromptTokens, vocabSize),
    draftFrameSize(s.gamma, vocabSize, true, true),
  ];
  if (s.mode === 'dsd') sizes.push(dsdDraftFrameSize(s.gamma, vocabSize, s.dsdPrecision));
  return Math.min(limits.maxFrameBytes, Math.max(...sizes));
}

/** What an edge node enforces as a whole (besides the per-session limits). */
export const EDGE_NODE_DEFAULTS = Object.freeze({
  port: 8080,
  /** WebRTC stack of the edge and of Node devices (WEBRTC_STACKS; measured in docs/capacity.md). */
  webrtc: 'datachannel' as WebrtcStack,
  host: '127.0.0.1',
  maxSessions: 64,
  /**
   * WebRTC handshakes in progress at once (each a peer connection, ~1 fd on datachannel, ~11-21 fds on wrtc, for up to
   * DEVICE_TIMEOUTS.connectMs); a slot is reserved before the handshake, so these count against maxSessions too.
   */
  maxPending: 16,
  /** Sessions held for a resume after their connection dropped (each keeps its KV cache); the oldest goes first. */
  maxHeld: 16,
  /** Partially reassembled frames a session may hold: one (a device sends its frames one after another). */
  maxPendingFrames: 1,
  /** A partial frame must complete within this many seconds of its first chunk. */
  partialFrameTimeoutS: 10,
  /** Largest frame accepted before the hello settles the session's settings (a hello is well under 4 KiB). */
  preHelloMaxFrameBytes: 16 * 1024,
  /**
   * Bytes of partial frames the whole edge holds at once. Sized for real vocabularies: at |V| = 151,936 a legal
   * DSD frame at γ 16 in f32 is ≈ 9.7 MB, so 128 MiB lets 13 such uploads be in flight together.
   */
  reassemblyBudgetBytes: 128 * 1024 * 1024,
  /** A peer must say hello this many seconds after its data channel opened. */
  helloTimeoutS: 5,
  idleTimeoutS: 300,
  resumeHoldS: 60,
  /** Joins (signaling sockets) per second per client address, with a burst of twice that. */
  joinsPerSecond: 10,
  /** Failed POST /token issuer-secret guesses per minute per client address. */
  issuerFailuresPerMinute: 10,
  /** Shortest --secret, --issuer-secret and --metrics-token accepted. */
  minSecretLength: 16,
  /** Join tokens usable once (the nonce is remembered until the token expires); off by default. */
  singleUseTokens: false,
  /** Per-peer errors of one code logged in full before the log only samples them (one line per interval). */
  errorLogBurst: 5,
  errorLogIntervalS: 10,
  /** A peer that draws more error frames than this within errorLogIntervalS is disconnected (garbage floods). */
  maxPeerErrors: 64,
});

/** POST /score (the fidelity check's exact reference): bounded work, behind the join credential. */
export const SCORE_LIMITS = Object.freeze({
  /** Largest request body. */
  maxBodyBytes: 1024 * 1024,
  /** Tokens scored per request (prompt plus every continuation): this many model contexts. */
  maxContexts: 64,
  /** Requests running or waiting; more get 503 with Retry-After. */
  maxQueued: 2,
  retryAfterS: 5,
});

// ---------------------------------------------------------------------------------------------------------------
// Emulated target cost (benchmarks): each target pass padded to a + b·tokens ms. Labelled EMULATION wherever used.
// ---------------------------------------------------------------------------------------------------------------

export interface TargetCost {
  /** ms per pass. */
  a: number;
  /** ms per scored token. */
  b: number;
}

/** Named presets (measured on an H200 with CUDA graphs; edge-7b: an A10-class GPU). */
export const TARGET_COST_PRESETS: Readonly<Record<string, TargetCost>> = Object.freeze({
  'h200-7b': { a: 6.0, b: 0.09 },
  'h200-32b': { a: 20.3, b: 0.26 },
  'edge-7b': { a: 25, b: 0.5 },
});

/** Parses `A,B` (ms per pass, ms per token), `A`, or a preset name. */
export function parseTargetCost(v: string): TargetCost {
  const preset = TARGET_COST_PRESETS[v.trim()];
  if (preset) return { ...preset };
  const parts = v.split(',').map((x) => x.trim());
  const [a, b] = parts.map(Number);
  if (
    parts.length > 2 ||
    parts.includes('') ||
    !(a >= 0) ||
    !Number.isFinite(a) ||
    !(b === undefined || (b >= 0 && Number.isFinite(b)))
  ) {
    throw new ProtocolError(
      ProtocolErrorCode.BadSettings,
      `target cost must be A,B (ms per pass, ms per scored token) or one of ${Object.keys(TARGET_COST_PRESETS).join(', ')}, got ${JSON.stringify(v)}`,
    );
  }
  return { a, b: b ?? 0 };
}

// ---------------------------------------------------------------------------------------------------------------
// Batched verification (edge/batch.ts): defaults, and the EMULATED batched GPU cost T(B, total tokens)
// ---------------------------------------------------------------------------------------------------------------

export const BATCH_DEFAULTS = Object.freeze({
  /** Tokens (sessions × longest new-token run, padding included) one batched pass takes at most. */
  tokenBudget: 512,
  /** Requests with more new tokens than this (prompt prefills) run in a pass of their own, not padding others. */
  soloAbove: 16,
});

/** A measured batched-pass cost table: ms[i][j] for batch[i] sessions scoring k[j] new tokens each. */
export interface BatchCostTable {
  label: string;
  batch: readonly number[];
  k: readonly number[];
  ms: readonly (readonly number[])[];
}

/**
 * H200 tables (docs: ../shared/reference/scale.md "Target verification cost on a GPU"; bf16, CUDA graphs, 1,024
 * cached tokens). `h200-7b` is the flash-attention lower bound, `h200-7b-masked` the masked-SDPA upper bound.
 */
export const BATCH_COST_PRESETS: Readonly<Record<string, BatchCostTable>> = Object.freeze({
  'h200-7b': {
    label: 'H200 Qwen2.5-7B shapes, flash attention',
    batch: [1, 4, 16, 64, 128, 256],
    k: [1, 3, 5, 9],
    ms: [
      [6.0, 6.5, 6.6, 6.7],
      [6.2, 6.8, 7.0, 7.2],
      [6.8, 8.6, 8.7, 9.1],
      [7.4, 14.8, 19.1, 24.6],
      [8.9, 25.4, 31.7, 44.2],
      [12.5, 47.2, 60.9, 85.9],
    ],
  },
  'h200-7b-masked': {
    label: 'H200 Qwen2.5-7B shapes, masked SDPA',
    batch: [1, 16, 64, 128, 256],
    k: [1, 3, 5, 9],
    ms: [
      [6.2, 7.4, 7.5, 7.7],
      [7.0, 11.6, 11.7, 12.3],
      [7.6, 24.6, 28.8, 34.3],
      [9.0, 43.7, 49.4, 61.2],
      [12.7, 82.2, 94.2, 119.5],
    ],
  },
  'h200-32b': {
    label: 'H200 Qwen2.5-32B shapes, flash attention',
    batch: [1, 16, 64],
    k: [1, 5, 9],
    ms: [
      [20.3, 21.7, 22.4],
      [22.6, 29.2, 32.1],
      [27.5, 67.9, 91.8],
    ],
  },
});

/** Linear interpolation of ys over xs at x, extrapolating the end segments (never below 0). */
function interp(xs: readonly number[], ys: readonly number[], x: number): number {
  if (xs.length === 1) return ys[0];
  let i = 0;
  while (i < xs.length - 2 && x > xs[i + 1]) i++;
  const t = (x - xs[i]) / (xs[i + 1] - xs[i]);
  return Math.max(0, ys[i] + t * (ys[i + 1] - ys[i]));
}

/**
 * EMULATED ms of one batched pass of `batch` sessions scoring `tokens` new tokens in all: bilinear in (B, k = tokens
 * / B) over the table, k clamped to its range below (a 1-token step costs the k = 1 column), extrapolated above.
 */
export function batchCostMs(table: BatchCostTable, batch: number, tokens: number): number {
  if (batch <= 0) return 0;
  const k = Math.max(table.k[0], tokens / batch);
  const col = table.ms.map((row) => interp(table.k, row, k));
  return interp(table.batch, col, batch);
}

/** Parses a --batch-cost preset name. */
export function parseBatchCost(v: string): BatchCostTable {
  const t = BATCH_COST_PRESETS[v.trim()];
  if (!t) {
    throw new ProtocolError(
      ProtocolErrorCode.BadSettings,
      `batch cost must be one of ${Object.keys(BATCH_COST_PRESETS).join(', ')}, got ${JSON.stringify(v)}`,
    );
  }
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// User-facing settings and their parsing from strings
// ---------------------------------------------------------------------------------------------------------------

/** Settings as a person gives them (CLI, URL, widget, form): flat, with `auto` and empty values. */
export interface UserSettings {
  mode: Mode;
  codec: DownlinkCodec;
  gamma: number | 'auto';
  temperature: number;
  topK: number;
  topP: number;
  /** Session seed; null = each side draws its own secret seed. */
  seed: number | null;
  /** The draft's own temperature; null = the target's. */
  draftTemperature: number | null;
  dsdPrecision: DsdPrecision;
  candidates: number | 'auto';
  pipeline: boolean;
  maxTokens: number;
}
export type SettingKey = keyof UserSettings;

/** How one setting is named and bounded everywhere it can be given. */
export interface SettingSpec {
  key: SettingKey;
  /** CLI flag (without --) and widget attribute; the URL query and the form use `key`. */
  flag: string;
  kind: 'choice' | 'int' | 'number' | 'bool';
  choices?: readonly string[];
  min?: number;
  max?: number;
  /** Exclusive lower bound (topP > 0). */
  above?: number;
  /** Also accepts `auto` (γ, candidates) or an empty value meaning null (seed, draft temperature). */
  auto?: boolean;
  nullable?: boolean;
  step?: number;
  help: string;
}

export const SETTING_SPECS: readonly SettingSpec[] = [
  { key: 'mode', flag: 'mode', kind: 'choice', choices: MODES, help: 'ar = edge only, dsd, dssd' },
  { key: 'codec', flag: 'codec', kind: 'choice', choices: DOWNLINK_CODECS, help: 'downlink codec of P_j' },
  {
    key: 'gamma',
    flag: 'gamma',
    kind: 'int',
    min: GAMMA.min,
    max: GAMMA.max,
    auto: true,
    step: 1,
    help: `draft length; auto adapts it per round up to ${GAMMA.auto}`,
  },
  {
    key: 'temperature',
    flag: 'temperature',
    kind: 'number',
    min: 0,
    max: 100,
    step: 0.05,
    help: 'temperature',
  },
  { key: 'topK', flag: 'top-k', kind: 'int', min: 0, max: 1 << 24, step: 1, help: 'top-k (0 = off)' },
  { key: 'topP', flag: 'top-p', kind: 'number', above: 0, max: 1, step: 0.01, help: 'top-p (1 = off)' },
  {
    key: 'seed',
    flag: 'seed',
    kind: 'int',
    min: 0,
    max: Number.MAX_SAFE_INTEGER,
    nullable: true,
    step: 1,
    help: 'session seed (empty: secret seeds)',
  },
  {
    key: 'draftTemperature',
    flag: 'draft-temperature',
    kind: 'number',
    min: 0,
    max: 100,
    nullable: true,
    step: 0.05,
    help: "the draft's own temperature (empty: the target's)",
  },
  {
    key: 'dsdPrecision',
    flag: 'dsd-precision',
    kind: 'choice',
    choices: DSD_PRECISIONS,
    help: 'DSD uplink precision',
  },
  {
    key: 'candidates',
    flag: 'candidates',
    kind: 'int',
    min: CANDIDATES.min,
    max: CANDIDATES.max,
    auto: true,
    step: 1,
    help: 'candidate count K, or auto',
  },
  {
    key: 'pipeline',
    flag: 'pipeline',
    kind: 'bool',
    help: 'dssd: keep drafting while verdicts are in flight (1/0)',
  },
  {
    key: 'maxTokens',
    flag: 'max-tokens',
    kind: 'int',
    min: 1,
    max: 4096,
    step: 1,
    help: 'new tokens per turn',
  },
];

export const SETTING_SPEC: Readonly<Record<SettingKey, SettingSpec>> = Object.fromEntries(
  SETTING_SPECS.map((s) => [s.key, s]),
) as Record<SettingKey, SettingSpec>;

export const DEFAULT_USER_SETTINGS: Readonly<UserSettings> = Object.freeze({
  mode: DEFAULT_SETTINGS.mode,
  codec: DEFAULT_SETTINGS.codec,
  gamma: GAMMA.default,
  temperature: GREEDY_OFF.temperature,
  topK: GREEDY_OFF.topK,
  topP: GREEDY_OFF.topP,
  seed: null,
  draftTemperature: null,
  dsdPrecision: DEFAULT_SETTINGS.dsdPrecision,
  candidates: DEFAULT_SETTINGS.candidates,
  pipeline: DEFAULT_SETTINGS.pipeline,
  maxTokens: 64,
});

/** The chat page's starting point: a little below temperature 1 and nucleus sampling read better. */
export const PAGE_DEFAULT_SETTINGS: Readonly<UserSettings> = Object.freeze({
  ...DEFAULT_USER_SETTINGS,
  temperature: 0.8,
  topP: 0.95,
  maxTokens: 96,
});

/** The settings a page or widget exposes (the rest keep their defaults there). */
export const PAGE_SETTING_KEYS: readonly SettingKey[] = [
  'mode',
  'codec',
  'gamma',
  'temperature',
  'topK',
  'topP',
  'seed',
  'pipeline',
  'maxTokens',
];

export interface SettingIssue {
  /** The name as given (flag, query key or attribute). */
  key: string;
  message: string;
}

/** Where the strings come from, which decides the names: `key` (URL query, form) or `flag` (CLI, widget). */
export type SettingNames = 'key' | 'flag';

/** String pairs: a record, URLSearchParams, or a lookup function (which cannot report unknown names). */
export type SettingSource =
  | Readonly<Record<string, string | null | undefined>>
  | URLSearchParams
  | ((name: string) => string | null | undefined);

const TRUE = ['1', 'true', 'on', 'yes'];
const FALSE = ['0', 'false', 'off', 'no'];

function describe(s: SettingSpec): string {
  if (s.kind === 'choice') return `one of ${s.choices!.join(', ')}`;
  if (s.kind === 'bool') return '1 or 0';
  const lo = s.above !== undefined ? `(${s.above}` : `[${s.min}`;
  const range = `${s.kind === 'int' ? 'an integer' : 'a number'} in ${lo}, ${s.max}]`;
  return `${range}${s.auto ? ' or auto' : ''}${s.nullable ? ' or empty' : ''}`;
}

/** Parses one value; returns the value or an error message. */
function parseValue(s: SettingSpec, raw: string): { value: UserSettings[SettingKey] } | { error: string } {
  const t = raw.trim();
  if (s.kind === 'bool') {
    // A bare flag or attribute (`--pipeline`, `<dssd-chat pipeline>`) arrives as an empty string: on.
    if (t === '' || TRUE.includes(t.toLowerCase())) return { value: true };
    if (FALSE.includes(t.toLowerCase())) return { value: false };
    return { error: `must be ${describe(s)}, got ${JSON.stringify(raw)}` };
  }
  if (s.kind === 'choice') {
    return s.choices!.includes(t)
      ? { value: t as never }
      : { error: `must be ${describe(s)}, got ${JSON.stringify(raw)}` };
  }
  if (s.auto && t === 'auto') return { value: 'auto' };
  if (s.nullable && t === '') return { value: null };
  const x = Number(t);
  const ok =
    t !== '' &&
    Number.isFinite(x) &&
    (s.kind !== 'int' || Number.isSafeInteger(x)) &&
    (s.min === undefined || x >= s.min) &&
    (s.above === undefined || x > s.above) &&
    (s.max === undefined || x <= s.max);
  return ok ? { value: x } : { error: `must be ${describe(s)}, got ${JSON.stringify(raw)}` };
}

function entries(source: SettingSource): [string, string | null | undefined][] | null {
  if (typeof source === 'function') return null;
  if (source instanceof URLSearchParams) return [...source.entries()];
  return Object.entries(source);
}

/**
 * Applies every valid setting in `source` over `base` and reports each bad or unknown one. Names are the
 * settings' keys (`topK`: URL query, form) or flags (`top-k`: CLI, widget attributes); `ignore` names other
 * parameters the source may carry (e.g. `token`).
 */
export function parseSettings(
  source: SettingSource,
  o: { base?: UserSettings; names?: SettingNames; ignore?: readonly string[] } = {},
): { settings: UserSettings; errors: SettingIssue[] } {
  const names = o.names ?? 'key';
  const settings: UserSettings = { ...(o.base ?? DEFAULT_USER_SETTINGS) };
  const errors: SettingIssue[] = [];
  const list = entries(source);
  const byName = new Map(SETTING_SPECS.map((s) => [names === 'key' ? s.key : s.flag, s] as const));
  const get =
    list === null
      ? (source as (name: string) => string | null | undefined)
      : (name: string) => list.find(([k]) => k === name)?.[1];
  if (list) {
    for (const [k] of list) {
      if (!byName.has(k) && !o.ignore?.includes(k))
        errors.push({ key: k, message: `unknown setting '${k}'` });
    }
  }
  for (const [name, spec] of byName) {
    const raw = get(name);
    if (raw === null || raw === undefined) continue;
    const r = parseValue(spec, raw);
    if ('error' in r) errors.push({ key: name, message: `${name} ${r.error}` });
    else (settings as unknown as Record<string, unknown>)[spec.key] = r.value;
  }
  return { settings, errors };
}

/** Device options from user settings: the session settings (validated) and whether γ adapts. */
export function toSessionSettings(u: UserSettings): { settings: SessionSettings; adaptiveGamma: boolean } {
  const sampling: SamplingParams = { temperature: u.temperature, topK: u.topK, topP: u.topP };
  const adaptiveGamma = u.gamma === 'auto' && u.mode !== 'ar';
  const settings = completeSettings({
    mode: u.mode,
    codec: u.codec,
    gamma: u.gamma === 'auto' ? GAMMA.auto : u.gamma,
    sampling,
    draftSampling: u.draftTemperature === null ? sampling : { ...sampling, temperature: u.draftTemperature },
    dsdPrecision: u.dsdPrecision,
    candidates: u.candidates,
    pipeline: u.pipeline && u.mode === 'dssd',
    ...(u.seed !== null ? { seed: u.seed } : {}),
  });
  return { settings, adaptiveGamma };
}

/** The query string (or widget attributes) that reproduce these settings; defaults left out. */
export function settingsToQuery(u: UserSettings, base: UserSettings = DEFAULT_USER_SETTINGS): string {
  const q = new URLSearchParams();
  for (const s of SETTING_SPECS) {
    const v = u[s.key];
    if (v === base[s.key]) continue;
    q.set(s.key, v === null ? '' : typeof v === 'boolean' ? (v ? '1' : '0') : String(v));
  }
  return q.toString();
}

/** The `--flag VALUE  help (default …)` lines of the CLI help for these settings. */
export function settingsHelp(
  keys: readonly SettingKey[],
  base: UserSettings = DEFAULT_USER_SETTINGS,
): string {
  return keys
    .map((k) => {
      const s = SETTING_SPEC[k];
      const arg =
        s.kind === 'bool'
          ? ''
          : s.kind === 'choice'
            ? s.choices!.join('|')
            : s.auto
              ? 'N|auto'
              : s.kind === 'int'
                ? 'N'
                : 'X';
      const d = base[k];
      const head = `  --${s.flag}${arg ? ' ' + arg : ''}`;
      return `${head.padEnd(32)} ${s.help}; ${describe(s)} (default ${d === null ? 'none' : d})`;
    })
    .join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Validation of what crosses the network
// ---------------------------------------------------------------------------------------------------------------

/** What a model side states about itself in the handshake. */
export interface ModelIdentity {
  tokenizerHash: string;
  vocabSize: number;
  maxContext: number;
  eosTokenId: number;
  /**
   * Every token that ends a turn, eosTokenId included (config.json / generation_config.json `eos_token_id`,
   * tokenizer_config.json `eos_token`: Qwen's <|im_end|> and <|endoftext|>). The edge's list decides for both
   * sides: the edge stops `ar` on it, the device cuts its answers on it. Absent: eosTokenId alone.
   */
  stopTokenIds?: number[];
  name?: string;
}

/** The tokens that end a turn for a model of this identity. */
export function stopTokens(id: ModelIdentity): ReadonlySet<number> {
  return new Set([id.eosTokenId, ...(id.stopTokenIds ?? [])].filter((t) => t >= 0));
}

/** At most this many stop tokens cross the handshake. */
const MAX_STOP_TOKENS = 16;

/** A loaded model's identity (anything shaped like @dssd/models' LanguageModel). */
export function identityOf(m: {
  tokenizerHash: string;
  config: {
    vocabSize: number;
    maxContext: number;
    eosTokenId: number;
    eosTokenIds?: readonly number[];
    name?: string;
  };
}): ModelIdentity {
  const c = m.config;
  const id: ModelIdentity = {
    tokenizerHash: m.tokenizerHash,
    vocabSize: c.vocabSize,
    maxContext: c.maxContext,
    eosTokenId: c.eosTokenId,
  };
  const extra = (c.eosTokenIds ?? []).filter((t) => t !== c.eosTokenId);
  if (extra.length > 0) id.stopTokenIds = [c.eosTokenId, ...extra].slice(0, MAX_STOP_TOKENS);
  if (c.name !== undefined) id.name = c.name;
  return id;
}

export interface HelloBody {
  protocol: number;
  model: ModelIdentity;
  settings: SessionSettings;
}

export interface WelcomeBody {
  protocol: number;
  sessionId: number;
  model: ModelIdentity;
  /** Context both sides can hold: min of the two models'. */
  maxContext: number;
}

const bad = (msg: string): never => {
  throw new ProtocolError(ProtocolErrorCode.BadSettings, msg);
};

function isObj(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function int(x: unknown, what: string, min: number, max: number): number {
  if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x > max) {
    return bad(`${what} must be an integer in [${min}, ${max}], got ${JSON.stringify(x)}`);
  }
  return x;
}

function sampling(x: unknown, what: string): SamplingParams {
  if (!isObj(x)) return bad(`${what} must be an object`);
  const p = { temperature: x.temperature, topK: x.topK, topP: x.topP } as SamplingParams;
  try {
    validateSamplingParams(p);
  } catch (e) {
    return bad(`${what}: ${(e as Error).message}`);
  }
  return p;
}

/**
 * Validates settings from the network or the user; returns a clean copy (unknown fields dropped). `maxGamma`
 * is the limit in force (an edge's configured one; the device's own bound GAMMA.max by default).
 */
export function validateSettings(x: unknown, limits: { maxGamma?: number } = {}): SessionSettings {
  if (!isObj(x)) return bad('settings must be an object');
  const mode = x.mode as Mode;
  if (!MODES.includes(mode)) bad(`mode must be one of ${MODES.join(', ')}, got ${JSON.stringify(x.mode)}`);
  const codec = x.codec as DownlinkCodec;
  if (!DOWNLINK_CODECS.includes(codec)) {
    bad(`codec must be one of ${DOWNLINK_CODECS.join(', ')}, got ${JSON.stringify(x.codec)}`);
  }
  const maxGamma = Math.min(limits.maxGamma ?? GAMMA.max, MAX_GAMMA - 1);
  const gamma = int(x.gamma, 'gamma', mode === 'ar' ? 0 : GAMMA.min, maxGamma);
  let seed: number | undefined;
  if (x.seed !== undefined && x.seed !== null) {
    try {
      validateSeed(x.seed as number);
    } catch (e) {
      bad(`seed: ${(e as Error).message}`);
    }
    seed = x.seed as number;
  }
  const dsdPrecision = x.dsdPrecision ?? DEFAULT_SETTINGS.dsdPrecision;
  if (!DSD_PRECISIONS.includes(dsdPrecision as DsdPrecision)) bad(`dsdPrecision must be f32 or f16`);
  const candidates = x.candidates ?? DEFAULT_SETTINGS.candidates;
  if (candidates !== 'auto') int(candidates, 'candidates', CANDIDATES.min, CANDIDATES.max);
  const s: SessionSettings = {
    mode,
    codec,
    gamma,
    sampling: sampling(x.sampling, 'sampling'),
    draftSampling: sampling(x.draftSampling ?? x.sampling, 'draftSampling'),
    dsdPrecision: dsdPrecision as DsdPrecision,
    topK: int(x.topK ?? TOPK_CODEC.default, 'topK', 1, TOPK_CODEC.max),
    candidates: candidates as number | 'auto',
    pipeline: false,
    window: 0,
  };
  const pipeline = x.pipeline ?? false;
  if (typeof pipeline !== 'boolean') bad('pipeline must be true or false');
  if (pipeline && mode !== 'dssd') bad(`pipelined drafting is a dssd mode, not ${mode}`);
  s.pipeline = pipeline as boolean;
  s.window = int(x.window ?? 0, 'window', 0, PIPELINE.maxWindow);
  if (seed !== undefined) s.seed = seed;
  return s;
}

/** Partial settings a device is opened with: the mode and anything else, the rest from the defaults. */
export type PartialSettings = Partial<SessionSettings> & Pick<SessionSettings, 'mode'>;

/**
 * Merges partial settings with the defaults (the draft samples like the target unless told otherwise; `ar`
 * drafts nothing) and validates them against the device's bound GAMMA.max, before any connection.
 */
export function completeSettings(s: PartialSettings): SessionSettings {
  const target = s.sampling ?? DEFAULT_SETTINGS.sampling;
  return validateSettings({
    ...DEFAULT_SETTINGS,
    ...s,
    gamma: gammaFor(s.mode, s.gamma ?? GAMMA.default),
    sampling: target,
    draftSampling: s.draftSampling ?? target,
  });
}

export function validateIdentity(x: unknown): ModelIdentity {
  if (!isObj(x)) return bad('model identity must be an object');
  if (typeof x.tokenizerHash !== 'string' || !/^[0-9a-f]{16,128}$/.test(x.tokenizerHash)) {
    bad('model.tokenizerHash must be a lowercase hex string');
  }
  const id: ModelIdentity = {
    tokenizerHash: x.tokenizerHash as string,
    vocabSize: int(x.vocabSize, 'model.vocabSize', 2, 1 << 24),
    maxContext: int(x.maxContext, 'model.maxContext', 2, 1 << 24),
    eosTokenId: int(x.eosTokenId, 'model.eosTokenId', -1, (1 << 24) - 1),
  };
  if (x.stopTokenIds !== undefined) {
    const s = x.stopTokenIds;
    if (!Array.isArray(s) || s.length > MAX_STOP_TOKENS)
      bad(`model.stopTokenIds must be a list of at most ${MAX_STOP_TOKENS} token ids`);
    id.stopTokenIds = (s as unknown[]).map((t, i) => int(t, `model.stopTokenIds[${i}]`, 0, id.vocabSize - 1));
  }
  if (typeof x.name === 'string') id.name = x.name.slice(0, 200);
  return id;
}

export function validateHello(x: Record<string, unknown>, limits: { maxGamma?: number } = {}): HelloBody {
  if (x.protocol !== PROTOCOL_VERSION) {
    bad(
      `protocol version ${JSON.stringify(x.protocol)} is not supported (this edge speaks ${PROTOCOL_VERSION})`,
    );
  }
  return {
    protocol: PROTOCOL_VERSION,
    model: validateIdentity(x.model),
    settings: validateSettings(x.settings, limits),
  };
}

export function validateWelcome(x: Record<string, unknown>): WelcomeBody {
  if (x.protocol !== PROTOCOL_VERSION) bad(`the edge speaks protocol ${JSON.stringify(x.protocol)}`);
  return {
    protocol: PROTOCOL_VERSION,
    sessionId: int(x.sessionId, 'sessionId', 1, 0xffffffff),
    model: validateIdentity(x.model),
    maxContext: int(x.maxContext, 'maxContext', 2, 1 << 24),
  };
}
