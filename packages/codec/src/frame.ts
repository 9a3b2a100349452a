/**
 * Frames: a fixed 20-byte header and a payload per frame type, all little-endian.
 *
 * Header
 *   [0, 2)   magic 'DS' (0x44 0x53)
 *   [2]      version (FRAME_VERSION)
 *   [3]      frame type (FRAME_TYPES)
 *   [4, 8)   u32 session id
 *   [8, 12)  u32 round
 *   [12, 16) u32 payload length
 *   [16, 20) u32 CRC-32C over the header (this field zeroed) followed by the payload
 *
 * Token ids are packed LSB-first at b = ⌈log2 |V|⌉ bits (|V| agreed at session start); payload offsets below are
 * relative to the payload start. Every field is validated on decode, and lengths are checked before allocating.
 */
import { bitsForVocab, checkVocabSize, packedByteLength, packIdsInto, unpackIds } from './bits.js';
import {
  decodeBody,
  decodeDense,
  encodeCandidates,
  encodedSize,
  encodeDistribution,
  ENCODING_TAGS,
  type DistributionEncodingOption,
} from './distribution.js';
import { crc32c } from './crc32c.js';
import { fail } from './errors.js';

export const FRAME_MAGIC_0 = 0x44; // 'D'
export const FRAME_MAGIC_1 = 0x53; // 'S'
/** 2: draft frames may report candidate trials; fullResponse carries P_j in its smallest exact encoding. */
export const FRAME_VERSION = 2;
export const HEADER_SIZE = 20;
/** Hard cap on γ: j = γ+1 must fit the u8 fields. */
export const MAX_GAMMA = 254;

/** Why a turn ended (0 on the wire means it did not). */
export type DoneReason = 'eos' | 'maxTokens' | 'contextEnd' | 'stopped' | 'error';
const DONE_REASONS: readonly (DoneReason | undefined)[] = [
  undefined,
  'eos',
  'maxTokens',
  'contextEnd',
  'stopped',
  'error',
];

/** Session-start handshake; the protocol layer validates the fields, the codec bounds size and shape. */
export interface HelloFrame {
  kind: 'hello';
  body: Record<string, unknown>;
}
export interface WelcomeFrame {
  kind: 'welcome';
  body: Record<string, unknown>;
}
/**
 * Truncates the session history to its first `base` tokens, appends `ids` and starts a turn of at most
 * `maxNewTokens` tokens. `base` lets the device state exactly which history it holds (a turn may have ended
 * mid-round, or a resampled token may not have reached the edge yet).
 * Payload: [0,4) u32 count n · [4,8) u32 maxNewTokens · [8,12) u32 base · [12, 12+⌈nb/8⌉) ids.
 */
export interface TurnFrame {
  kind: 'turn';
  base: number;
  ids: ArrayLike<number>;
  maxNewTokens: number;
}
/**
 * DSSD uplink: γ draft ids with q_i = Q_i(x_i), optionally last round's resampled token and, after a candidates
 * rejection, how many candidate trials it took.
 * Payload: [0] u8 γ · [1] u8 flags (bit 0: previous token present; bit 1: trial report; others zero) · when
 * bit 1: u16 trials (t ≥ 1: accepted at trial t; 0: every candidate failed) · γ float32 q in (0, 1] · then
 * packed ids: the previous token first when flagged, then x1..xγ.
 */
export interface DraftFrame {
  kind: 'draft';
  ids: ArrayLike<number>;
  q: ArrayLike<number>;
  /** Candidate trials the last rejection took (0: all failed, the device fell back to P_j). */
  candidateTrials?: number;
  prevToken?: number;
}
/**
 * DSD uplink: γ draft ids and the γ full distributions Q_i.
 * Payload: [0] u8 γ · [1] u8 encoding tag (1 = f32 exact, 2 = f16 compact) · [2, 2+γ·V·w) the γ dense
 * distributions (w = 4 or 2) · then γ packed ids.
 */
export interface DsdDraftFrame {
  kind: 'dsdDraft';
  ids: ArrayLike<number>;
  dists: Float32Array[];
  encoding: 'f32' | 'f16';
}
/** P_j after a rejection: a distribution in one of the encodings, or an exact candidate list. */
export type RejectionBody =
  | { encoding: DistributionEncodingOption; p: Float32Array; topK?: number }
  | { encoding: 'candidates'; ids: ArrayLike<number>; probs: ArrayLike<number> };
/**
 * Downlink verdict. j is 1-based; drafts before j are accepted.
 * Payload: [0] u8 outcome (0 accept, 1 reject, 2 resample, 3 done, 4 accepted) · [1] u8 done reason (0 = turn continues,
 * 1 eos, 2 maxTokens, 3 contextEnd, 4 stopped, 5 error; non-zero for 'done') · [2] u8 j · then
 *   accept   (all γ accepted, j = γ+1): [3,7) u32 bonus token sampled from P_{γ+1}
 *   reject   (DSSD): [3..) P_j as a distribution/candidates body (see distribution.ts)
 *   resample (DSD, edge resampled at j): [3,7) u32 token
 *   done     nothing more.
 *   accepted (pipelined block, all accepted, j = γ+1, no bonus: the next block continues from x_γ): nothing more.
 */
export type VerdictFrame =
  | { kind: 'verdict'; outcome: 'accept'; j: number; token: number; done?: DoneReason }
  | { kind: 'verdict'; outcome: 'reject'; j: number; body: RejectionBody; done?: DoneReason }
  | { kind: 'verdict'; outcome: 'resample'; j: number; token: number; done?: DoneReason }
  | { kind: 'verdict'; outcome: 'done'; j: number; done: DoneReason }
  | { kind: 'verdict'; outcome: 'accepted'; j: number; done?: DoneReason };
export type VerdictOutcome = VerdictFrame['outcome'];
/** Distribution bodies that carry P exactly (f16 and topk do not). */
const EXACT_BODIES: ReadonlySet<string> = new Set(['f32', 'sparse', 'token', 'grid']);
const OUTCOMES: readonly VerdictOutcome[] = ['accept', 'reject', 'resample', 'done', 'accepted'];
/** The device needs the dense P_j (e.g. every candidate failed). Payload: [0] u8 j. */
export interface FullRequestFrame {
  kind: 'fullRequest';
  j: number;
}
/** P_j in full after every candidate failed, in its smallest exact encoding. Payload: [0] u8 j · a distribution body. */
export interface FullResponseFrame {
  kind: 'fullResponse';
  j: number;
  p: Float32Array;
}
/** Edge-only autoregressive baseline: a batch of tokens. Payload: [0] u8 done reason · [1,5) u32 n · ids. */
export interface ArTokensFrame {
  kind: 'arTokens';
  ids: ArrayLike<number>;
  done?: DoneReason;
}
/** Payload: [0,2) u16 code · [2..) UTF-8 message (at most ERROR_MESSAGE_MAX_BYTES; longer ones are cut). */
export interface ErrorFrame {
  kind: 'error';
  code: number;
  message: string;
}
/** The device cancels the current turn. Empty payload. */
export interface StopFrame {
  kind: 'stop';
}
/** Round-trip probes. Payload: [0,8) float64 timestamp (ms, finite). */
export interface PingFrame {
  kind: 'ping';
  t: number;
}
export interface PongFrame {
  kind: 'pong';
  t: number;
}

export type Frame =
  | HelloFrame
  | WelcomeFrame
  | TurnFrame
  | DraftFrame
  | DsdDraftFrame
  | VerdictFrame
  | FullRequestFrame
  | FullResponseFrame
  | ArTokensFrame
  | ErrorFrame
  | StopFrame
  | PingFrame
  | PongFrame;
export type FrameKind = Frame['kind'];

/** Wire type byte per frame kind. */
export const FRAME_TYPES: Readonly<Record<FrameKind, number>> = {
  hello: 1,
  welcome: 2,
  turn: 3,
  draft: 4,
  dsdDraft: 5,
  verdict: 6,
  fullRequest: 7,
  fullResponse: 8,
  arTokens: 9,
  error: 10,
  stop: 11,
  ping: 12,
  pong: 13,
};
const KINDS: readonly (FrameKind | undefined)[] = (() => {
  const k: (FrameKind | undefined)[] = [];
  for (const [kind, t] of Object.entries(FRAME_TYPES)) k[t] = kind as FrameKind;
  return k;
})();

/** Header fields the encoder writes and the decoder returns with the frame. */
export interface FrameContext {
  sessionId: number;
  round: number;
  /** Agreed |V|; needed by every frame that carries token ids or distributions. */
  vocabSize?: number;
}
export type DecodedFrame = Frame & { sessionId: number; round: number };

export interface FrameLimits {
  /** Agreed |V|; frames carrying ids or distributions are refused (BadArgument) without it. */
  vocabSize?: number;
  /** Largest γ accepted (default DEFAULT_FRAME_LIMITS.maxGamma, never above MAX_GAMMA). */
  maxGamma?: number;
  maxPayloadBytes?: number;
  maxJsonBytes?: number;
  /** Largest id count in 'turn' and 'arTokens'. */
  maxTokens?: number;
  /** Largest K of a candidates body. */
  maxCandidates?: number;
  maxErrorBytes?: number;
}

export const DEFAULT_FRAME_LIMITS = {
  maxGamma: 32,
  maxPayloadBytes: 64 * 1024 * 1024,
  maxJsonBytes: 64 * 1024,
  maxTokens: 1 << 20,
  maxCandidates: 1024,
  maxErrorBytes: 1024,
} as const;

export const ERROR_MESSAGE_MAX_BYTES = 1024;

const utf8Encoder = new TextEncoder();
// fatal: refuse malformed UTF-8; ignoreBOM: keep a leading U+FEFF so decode∘encode is the identity.
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const ZERO4 = new Uint8Array(4);

function isU32(x: number): boolean {
  return Number.isInteger(x) && x >= 0 && x <= 0xffffffff;
}

function requireVocab(v: number | undefined, kind: string): number {
  if (v === undefined) fail('BadArgument', `'${kind}' frames need the agreed vocabSize`);
  checkVocabSize(v);
  return v;
}

function checkGammaArg(gamma: number): void {
  if (!Number.isInteger(gamma) || gamma < 0 || gamma > MAX_GAMMA) {
    fail('BadArgument', `γ must be an integer in [0, ${MAX_GAMMA}], got ${gamma}`);
  }
}

function checkJArg(j: number): void {
  if (!Number.isInteger(j) || j < 1 || j > MAX_GAMMA + 1)
    fail('BadArgument', `j must be in [1, ${MAX_GAMMA + 1}]`);
}

function checkIdArg(id: number, vocabSize: number, what: string): void {
  if (!(Number.isInteger(id) && id >= 0 && id < vocabSize))
    fail('BadArgument', `${what} ${id} is not below ${vocabSize}`);
}

function doneCode(reason: DoneReason | undefined): number {
  if (reason === undefined) return 0;
  const c = DONE_REASONS.indexOf(reason);
  if (c <= 0) fail('BadArgument', `unknown done reason ${String(reason)}`);
  return c;
}

/** Bytes of the packed ids of `count` tokens for this vocabulary. */
function idBytes(count: number, vocabSize: number): number {
  return packedByteLength(count, bitsForVocab(vocabSize));
}

// ---- size helpers (for the latency model) ----

export function turnFrameSize(count: number, vocabSize: number): number {
  return HEADER_SIZE + 12 + idBytes(count, vocabSize);
}
export function draftFrameSize(
  gamma: number,
  vocabSize: number,
  withPrevToken = false,
  withTrialReport = false,
): number {
  return (
    HEADER_SIZE +
    2 +
    (withTrialReport ? 2 : 0) +
    4 * gamma +
    idBytes(gamma + (withPrevToken ? 1 : 0), vocabSize)
  );
}
export function dsdDraftFrameSize(gamma: number, vocabSize: number, encoding: 'f32' | 'f16' = 'f32'): number {
  return HEADER_SIZE + 2 + gamma * vocabSize * (encoding === 'f32' ? 4 : 2) + idBytes(gamma, vocabSize);
}
/** Verdict size; for 'reject' pass the body size (encodedSize / distributionBodySize). */
export function verdictFrameSize(outcome: VerdictOutcome, bodyBytes = 0): number {
  if (outcome === 'reject') return HEADER_SIZE + 3 + bodyBytes;
  return HEADER_SIZE + 3 + (outcome === 'done' || outcome === 'accepted' ? 0 : 4);
}
export function fullRequestFrameSize(): number {
  return HEADER_SIZE + 1;
}
/** fullResponse size for this P_j (its smallest exact encoding). */
export function fullResponseFrameSize(p: Float32Array): number {
  return HEADER_SIZE + 1 + encodedSize(p, 'auto');
}
export function arTokensFrameSize(count: number, vocabSize: number): number {
  return HEADER_SIZE + 5 + idBytes(count, vocabSize);
}
export function pingFrameSize(): number {
  return HEADER_SIZE + 8;
}

// ---- encoding ----

/** Packs ids for `vocabSize` into a fresh buffer, with a BadArgument for any id ≥ |V|. */
function packFor(ids: ArrayLike<number>, vocabSize: number, what: string): Uint8Array {
  for (let i = 0; i < ids.length; i++) checkIdArg(ids[i], vocabSize, what);
  const out = new Uint8Array(idBytes(ids.length, vocabSize));
  packIdsInto(ids, bitsForVocab(vocabSize), out, 0);
  return out;
}

function u8s(...xs: number[]): Uint8Array {
  return Uint8Array.from(xs);
}

function u32le(x: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x, true);
  return b;
}

function jsonPayload(body: Record<string, unknown>, kind: string): Uint8Array {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    fail('BadArgument', `'${kind}' body must be a JSON object`);
  }
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch (e) {
    return fail('BadArgument', `'${kind}' body is not serialisable: ${(e as Error).message}`);
  }
  return utf8Encoder.encode(text);
}

/** Cuts a string's UTF-8 encoding to at most `max` bytes without splitting a character. */
function utf8Truncate(s: string, max: number): Uint8Array {
  const b = utf8Encoder.encode(s);
  if (b.length <= max) return b;
  let n = max;
  while (n > 0 && (b[n] & 0xc0) === 0x80) n--; // back up to a lead byte
  return b.subarray(0, n);
}

function payloadParts(frame: Frame, ctx: FrameContext): Uint8Array[] {
  switch (frame.kind) {
    case 'hello':
    case 'welcome':
      return [jsonPayload(frame.body, frame.kind)];
    case 'turn': {
      const V = requireVocab(ctx.vocabSize, frame.kind);
      if (!isU32(frame.maxNewTokens)) fail('BadArgument', 'maxNewTokens must be a u32');
      if (!isU32(frame.base)) fail('BadArgument', 'base must be a u32');
      return [
        u32le(frame.ids.length),
        u32le(frame.maxNewTokens),
        u32le(frame.base),
        packFor(frame.ids, V, 'token id'),
      ];
    }
    case 'draft': {
      const V = requireVocab(ctx.vocabSize, frame.kind);
      const gamma = frame.ids.length;
      checkGammaArg(gamma);
      if (frame.q.length !== gamma) fail('BadArgument', `draft: ${gamma} ids but ${frame.q.length} q values`);
      const q = new Float32Array(frame.q);
      for (let i = 0; i < gamma; i++) {
        if (!(q[i] > 0 && q[i] <= 1)) fail('BadArgument', `draft: q[${i}] = ${q[i]} is not in (0, 1]`);
      }
      const hasPrev = frame.prevToken !== undefined;
      const trials = frame.candidateTrials;
      if (trials !== undefined && !(Number.isInteger(trials) && trials >= 0 && trials <= 0xffff))
        fail('BadArgument', `draft: candidate trials ${trials} is not in [0, 65535]`);
      const ids = hasPrev ? [frame.prevToken as number, ...Array.from(frame.ids)] : frame.ids;
      const qBytes = new Uint8Array(4 * gamma);
      const dv = new DataView(qBytes.buffer);
      for (let i = 0; i < gamma; i++) dv.setFloat32(4 * i, q[i], true);
      const flags = (hasPrev ? 1 : 0) | (trials !== undefined ? 2 : 0);
      return [
        u8s(gamma, flags),
        ...(trials !== undefined ? [u8s(trials & 0xff, trials >>> 8)] : []),
        qBytes,
        packFor(ids, V, 'token id'),
      ];
    }
    case 'dsdDraft': {
      const V = requireVocab(ctx.vocabSize, frame.kind);
      const gamma = frame.ids.length;
      checkGammaArg(gamma);
      if (frame.dists.length !== gamma)
        fail('BadArgument', `dsdDraft: ${gamma} ids but ${frame.dists.length} dists`);
      if (frame.encoding !== 'f32' && frame.encoding !== 'f16')
        fail('BadArgument', 'dsdDraft: encoding must be f32|f16');
      const parts = [u8s(gamma, ENCODING_TAGS[frame.encoding])];
      for (const d of frame.dists) {
        if (!(d instanceof Float32Array) || d.length !== V)
          fail('BadArgument', `dsdDraft: each dist must be Float32Array(${V})`);
        // Reuse the distribution body encoders and drop their tag byte.
        parts.push(encodeDistribution(d, frame.encoding).subarray(1));
      }
      parts.push(packFor(frame.ids, V, 'token id'));
      return parts;
    }
    case 'verdict': {
      checkJArg(frame.j);
      const outcome = OUTCOMES.indexOf(frame.outcome);
      if (outcome < 0) fail('BadArgument', `unknown verdict outcome ${String(frame.outcome)}`);
      if (frame.outcome === 'done' && frame.done === undefined)
        fail('BadArgument', "'done' verdict needs a reason");
      const head = u8s(outcome, doneCode(frame.done), frame.j);
      if (frame.outcome === 'done' || frame.outcome === 'accepted') return [head];
      const V = requireVocab(ctx.vocabSize, frame.kind);
      if (frame.outcome === 'reject') {
        const b = frame.body;
        if (b.encoding === 'candidates') return [head, encodeCandidates(b, V)];
        if (!(b.p instanceof Float32Array) || b.p.length !== V)
          fail('BadArgument', `verdict: P_j must be Float32Array(${V})`);
        return [head, encodeDistribution(b.p, b.encoding, { topK: b.topK })];
      }
      checkIdArg(frame.token, V, 'token id');
      return [head, u32le(frame.token)];
    }
    case 'fullRequest':
      checkJArg(frame.j);
      return [u8s(frame.j)];
    case 'fullResponse': {
      const V = requireVocab(ctx.vocabSize, frame.kind);
      checkJArg(frame.j);
      if (!(frame.p instanceof Float32Array) || frame.p.length !== V)
        fail('BadArgument', `fullResponse: P_j must be Float32Array(${V})`);
      return [u8s(frame.j), encodeDistribution(frame.p, 'auto')];
    }
    case 'arTokens': {
      const V = requireVocab(ctx.vocabSize, frame.kind);
      return [u8s(doneCode(frame.done)), u32le(frame.ids.length), packFor(frame.ids, V, 'token id')];
    }
    case 'error': {
      if (!Number.isInteger(frame.code) || frame.code < 0 || frame.code > 0xffff)
        fail('BadArgument', 'error code must be a u16');
      return [
        u8s(frame.code & 0xff, frame.code >>> 8),
        utf8Truncate(String(frame.message), ERROR_MESSAGE_MAX_BYTES),
      ];
    }
    case 'stop':
      return [];
    case 'ping':
    case 'pong': {
      if (!Number.isFinite(frame.t)) fail('BadArgument', 'ping/pong timestamp must be finite');
      const b = new Uint8Array(8);
      new DataView(b.buffer).setFloat64(0, frame.t, true);
      return [b];
    }
    default:
      return fail('BadArgument', `unknown frame kind ${String((frame as { kind: unknown }).kind)}`);
  }
}

/** Encodes a frame with its header and CRC. Throws CodecError('BadArgument') for unrepresentable input. */
export function encodeFrame(frame: Frame, ctx: FrameContext): Uint8Array {
  if (!isU32(ctx.sessionId) || !isU32(ctx.round)) fail('BadArgument', 'sessionId and round must be u32');
  const type = FRAME_TYPES[frame.kind];
  if (type === undefined) fail('BadArgument', `unknown frame kind ${String(frame.kind)}`);
  const parts = payloadParts(frame, ctx);
  let len = 0;
  for (const p of parts) len += p.length;
  if (len > 0xffffffff) fail('BadArgument', 'payload too large');
  const out = new Uint8Array(HEADER_SIZE + len);
  const dv = new DataView(out.buffer);
  out[0] = FRAME_MAGIC_0;
  out[1] = FRAME_MAGIC_1;
  out[2] = FRAME_VERSION;
  out[3] = type;
  dv.setUint32(4, ctx.sessionId, true);
  dv.setUint32(8, ctx.round, true);
  dv.setUint32(12, len, true);
  let o = HEADER_SIZE;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  dv.setUint32(16, frameCrc(out), true);
  return out;
}

/** CRC-32C of a whole frame as defined by the header: header with the CRC field zeroed, then the payload. */
export function frameCrc(frame: Uint8Array): number {
  let c = crc32c(frame, 0, 0, 16);
  c = crc32c(ZERO4, c);
  return crc32c(frame, c, HEADER_SIZE, frame.length);
}

// ---- decoding ----

export interface FrameHeader {
  version: number;
  type: number;
  /** Undefined for an unknown type byte. */
  kind: FrameKind | undefined;
  sessionId: number;
  round: number;
  payloadLength: number;
}

/** Reads and sanity-checks the header only (magic, version); does not check the CRC or the payload. */
export function peekHeader(bytes: Uint8Array): FrameHeader {
  if (bytes.length < HEADER_SIZE)
    fail('Truncated', `frame of ${bytes.length} bytes is shorter than its header`);
  if (bytes[0] !== FRAME_MAGIC_0 || bytes[1] !== FRAME_MAGIC_1)
    fail('BadMagic', 'frame does not start with "DS"');
  if (bytes[2] !== FRAME_VERSION)
    fail('BadVersion', `frame version ${bytes[2]}, this codec speaks ${FRAME_VERSION}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    version: bytes[2],
    type: bytes[3],
    kind: KINDS[bytes[3]],
    sessionId: dv.getUint32(4, true),
    round: dv.getUint32(8, true),
    payloadLength: dv.getUint32(12, true),
  };
}

/** Bounds-checked little-endian cursor over one payload. */
class Reader {
  private readonly dv: DataView;
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start: number,
    readonly end: number,
  ) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = start;
  }
  get left(): number {
    return this.end - this.pos;
  }
  need(n: number, what: string): void {
    if (this.left < n) fail('Truncated', `${what}: need ${n} bytes, ${this.left} left`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.bytes[this.pos++];
  }
  u16(what: string): number {
    this.need(2, what);
    const v = this.dv.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.dv.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f32(): number {
    const v = this.dv.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }
  f64(what: string): number {
    this.need(8, what);
    const v = this.dv.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }
  ids(count: number, vocabSize: number, what: string): Uint32Array {
    const b = bitsForVocab(vocabSize);
    this.need(packedByteLength(count, b), what);
    const ids = unpackIds(this.bytes.subarray(0, this.end), count, b, this.pos, vocabSize);
    this.pos += packedByteLength(count, b);
    return ids;
  }
  rest(): Uint8Array {
    const r = this.bytes.subarray(this.pos, this.end);
    this.pos = this.end;
    return r;
  }
  finish(what: string): void {
    if (this.pos !== this.end) fail('BadLength', `${what}: ${this.end - this.pos} trailing bytes`);
  }
}

function parseJson(bytes: Uint8Array, max: number, kind: string): Record<string, unknown> {
  if (bytes.length > max) fail('TooLarge', `'${kind}' body of ${bytes.length} bytes exceeds ${max}`);
  let value: unknown;
  try {
    value = JSON.parse(utf8Decoder.decode(bytes));
  } catch (e) {
    return fail('BadValue', `'${kind}' body is not valid UTF-8 JSON: ${(e as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail('BadValue', `'${kind}' body must be a JSON object`);
  }
  return value as Record<string, unknown>;
}

function readDone(r: Reader, what: string): DoneReason | undefined {
  const c = r.u8(what);
  if (c >= DONE_REASONS.length) fail('OutOfRange', `${what}: unknown done reason ${c}`);
  return DONE_REASONS[c];
}

function readJ(r: Reader, maxGamma: number, what: string): number {
  const j = r.u8(what);
  if (j < 1 || j > maxGamma + 1) fail('OutOfRange', `${what}: j = ${j} is not in [1, ${maxGamma + 1}]`);
  return j;
}

function readGamma(r: Reader, maxGamma: number, what: string): number {
  const g = r.u8(what);
  if (g > maxGamma) fail('OutOfRange', `${what}: γ = ${g} exceeds maxGamma ${maxGamma}`);
  return g;
}

function readCount(r: Reader, max: number, what: string): number {
  const n = r.u32(what);
  if (n > max) fail('TooLarge', `${what}: count ${n} exceeds ${max}`);
  return n;
}

/**
 * Decodes one whole frame, validating header, CRC and every payload field against `limits`. Throws CodecError
 * only; allocations are bounded by the input length and the declared limits.
 */
export function decodeFrame(bytes: Uint8Array, limits: FrameLimits = {}): DecodedFrame {
  const h = peekHeader(bytes);
  const maxPayload = limits.maxPayloadBytes ?? DEFAULT_FRAME_LIMITS.maxPayloadBytes;
  if (h.payloadLength > maxPayload)
    fail('TooLarge', `payload of ${h.payloadLength} bytes exceeds ${maxPayload}`);
  const end = HEADER_SIZE + h.payloadLength;
  if (bytes.length < end) fail('Truncated', `frame has ${bytes.length} bytes, header promises ${end}`);
  if (bytes.length > end) fail('BadLength', `frame has ${bytes.length - end} bytes after its payload`);
  const crc = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(16, true);
  if (frameCrc(bytes) !== crc) fail('BadCrc', 'CRC-32C mismatch');
  if (h.kind === undefined) fail('UnknownType', `unknown frame type ${h.type}`);
  const meta = { sessionId: h.sessionId, round: h.round };
  const frame = decodePayload(h.kind, new Reader(bytes, HEADER_SIZE, end), limits);
  return Object.assign(frame, meta);
}

function decodePayload(kind: FrameKind, r: Reader, limits: FrameLimits): Frame {
  const maxGamma = Math.min(limits.maxGamma ?? DEFAULT_FRAME_LIMITS.maxGamma, MAX_GAMMA);
  let frame: Frame;
  switch (kind) {
    case 'hello':
    case 'welcome':
      return {
        kind,
        body: parseJson(r.rest(), limits.maxJsonBytes ?? DEFAULT_FRAME_LIMITS.maxJsonBytes, kind),
      };
    case 'turn': {
      const V = requireVocab(limits.vocabSize, kind);
      const n = readCount(r, limits.maxTokens ?? DEFAULT_FRAME_LIMITS.maxTokens, 'turn');
      const maxNewTokens = r.u32('turn');
      const base = r.u32('turn');
      frame = { kind, base, ids: r.ids(n, V, 'turn ids'), maxNewTokens };
      break;
    }
    case 'draft': {
      const V = requireVocab(limits.vocabSize, kind);
      const gamma = readGamma(r, maxGamma, 'draft');
      const flags = r.u8('draft');
      if (flags > 3) fail('BadValue', `draft: unknown flag bits 0x${flags.toString(16)}`);
      let trials: number | undefined;
      if (flags & 2) {
        r.need(2, 'draft trials');
        trials = r.u8('draft') | (r.u8('draft') << 8);
      }
      r.need(4 * gamma, 'draft q');
      const q = new Float32Array(gamma);
      for (let i = 0; i < gamma; i++) {
        const v = r.f32();
        if (!(v > 0 && v <= 1)) fail('BadValue', `draft: q[${i}] = ${v} is not in (0, 1]`);
        q[i] = v;
      }
      const prev = flags & 1;
      const all = r.ids(gamma + prev, V, 'draft ids');
      frame = prev ? { kind, ids: all.subarray(1), q, prevToken: all[0] } : { kind, ids: all, q };
      if (trials !== undefined) frame.candidateTrials = trials;
      break;
    }
    case 'dsdDraft': {
      const V = requireVocab(limits.vocabSize, kind);
      const gamma = readGamma(r, maxGamma, 'dsdDraft');
      const tag = r.u8('dsdDraft');
      if (tag !== 1 && tag !== 2) fail('UnknownType', `dsdDraft: unknown encoding tag ${tag}`);
      const encoding = tag === 1 ? 'f32' : 'f16';
      const w = tag === 1 ? 4 : 2;
      // Whole-payload length check first, so γ·V allocations only happen for bytes that are really there.
      const expected = gamma * V * w + idBytes(gamma, V);
      if (r.left < expected) fail('Truncated', `dsdDraft: need ${expected} bytes, ${r.left} left`);
      if (r.left > expected) fail('BadLength', `dsdDraft: ${r.left - expected} trailing bytes`);
      const dists: Float32Array[] = [];
      for (let i = 0; i < gamma; i++) {
        dists.push(decodeDense(r.bytes, r.pos, V, encoding));
        r.pos += V * w;
      }
      frame = { kind, ids: r.ids(gamma, V, 'dsdDraft ids'), dists, encoding };
      break;
    }
    case 'verdict': {
      const o = r.u8('verdict');
      if (o >= OUTCOMES.length) fail('OutOfRange', `verdict: unknown outcome ${o}`);
      const outcome = OUTCOMES[o];
      const done = readDone(r, 'verdict');
      const j = readJ(r, maxGamma, 'verdict');
      if (outcome === 'done') {
        if (done === undefined) fail('BadValue', "verdict: 'done' outcome without a reason");
        frame = { kind, outcome, j, done };
        break;
      }
      if (outcome === 'accepted') {
        frame = done === undefined ? { kind, outcome, j } : { kind, outcome, j, done };
        break;
      }
      const V = requireVocab(limits.vocabSize, kind);
      if (outcome === 'reject') {
        const body = decodeBody(r.rest(), V, limits.maxCandidates ?? DEFAULT_FRAME_LIMITS.maxCandidates);
        frame = done === undefined ? { kind, outcome, j, body } : { kind, outcome, j, body, done };
        break;
      }
      const token = r.u32('verdict token');
      if (token >= V) fail('OutOfRange', `verdict: token ${token} is not below |V| = ${V}`);
      frame = done === undefined ? { kind, outcome, j, token } : { kind, outcome, j, token, done };
      break;
    }
    case 'fullRequest':
      frame = { kind, j: readJ(r, maxGamma, kind) };
      break;
    case 'fullResponse': {
      const V = requireVocab(limits.vocabSize, kind);
      const j = readJ(r, maxGamma, kind);
      const body = decodeBody(r.rest(), V, 0);
      if (!EXACT_BODIES.has(body.encoding))
        fail('BadValue', `fullResponse: P_j must be in an exact encoding, got ${body.encoding}`);
      frame = { kind, j, p: (body as { p: Float32Array }).p };
      break;
    }
    case 'arTokens': {
      const V = requireVocab(limits.vocabSize, kind);
      const done = readDone(r, kind);
      const n = readCount(r, limits.maxTokens ?? DEFAULT_FRAME_LIMITS.maxTokens, kind);
      const ids = r.ids(n, V, 'arTokens ids');
      frame = done === undefined ? { kind, ids } : { kind, ids, done };
      break;
    }
    case 'error': {
      const code = r.u16(kind);
      const max = limits.maxErrorBytes ?? DEFAULT_FRAME_LIMITS.maxErrorBytes;
      const msg = r.rest();
      if (msg.length > max) fail('TooLarge', `error message of ${msg.length} bytes exceeds ${max}`);
      let message: string;
      try {
        message = utf8Decoder.decode(msg);
      } catch {
        return fail('BadValue', 'error message is not valid UTF-8');
      }
      frame = { kind, code, message };
      break;
    }
    case 'stop':
      frame = { kind };
      break;
    case 'ping':
    case 'pong': {
      const t = r.f64(kind);
      if (!Number.isFinite(t)) fail('BadValue', `${kind}: timestamp is not finite`);
      frame = { kind, t };
      break;
    }
    default:
      return fail('UnknownType', `unknown frame kind ${String(kind)}`);
  }
  r.finish(kind);
  return frame;
}
