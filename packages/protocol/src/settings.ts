/** Session settings, the hello/welcome handshake bodies and their validation. */
import { validateSamplingParams, validateSeed, type SamplingParams } from '@dssd/kernel';
import { MAX_GAMMA } from '@dssd/codec';
import { ProtocolError, ProtocolErrorCode } from './errors.js';

export const PROTOCOL_VERSION = 1;

/** ar: edge-only decoding streamed to a thin client; dsd: full Q's uplink; dssd: the split protocol. */
export type Mode = 'ar' | 'dsd' | 'dssd';
export const MODES: readonly Mode[] = ['ar', 'dsd', 'dssd'];

/** Downlink encodings of P_j. f16 and topk are lossy (labelled so everywhere); the rest are exact. */
export type DownlinkCodec = 'auto' | 'f32' | 'f16' | 'sparse' | 'topk' | 'candidates';
export const DOWNLINK_CODECS: readonly DownlinkCodec[] = [
  'auto',
  'f32',
  'f16',
  'sparse',
  'topk',
  'candidates',
];
export const LOSSY_CODECS: readonly DownlinkCodec[] = ['f16', 'topk'];

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
  dsdPrecision: 'f32' | 'f16';
  /** K for the lossy topk codec. */
  topK: number;
  /** Candidate count for the candidates codec, or 'auto' (adapts K to the observed acceptance). */
  candidates: number | 'auto';
}

export const DEFAULT_SETTINGS: SessionSettings = {
  mode: 'dssd',
  codec: 'auto',
  gamma: 4,
  sampling: { temperature: 1, topK: 0, topP: 1 },
  draftSampling: { temperature: 1, topK: 0, topP: 1 },
  dsdPrecision: 'f32',
  topK: 20,
  candidates: 'auto',
};

/** What a model side states about itself in the handshake. */
export interface ModelIdentity {
  tokenizerHash: string;
  vocabSize: number;
  maxContext: number;
  eosTokenId: number;
  name?: string;
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

/** Validates settings from the network or the user; returns a clean copy (unknown fields dropped). */
export function validateSettings(x: unknown, limits: { maxGamma?: number } = {}): SessionSettings {
  if (!isObj(x)) return bad('settings must be an object');
  const mode = x.mode as Mode;
  if (!MODES.includes(mode)) bad(`mode must be one of ${MODES.join(', ')}, got ${JSON.stringify(x.mode)}`);
  const codec = x.codec as DownlinkCodec;
  if (!DOWNLINK_CODECS.includes(codec)) {
    bad(`codec must be one of ${DOWNLINK_CODECS.join(', ')}, got ${JSON.stringify(x.codec)}`);
  }
  const maxGamma = Math.min(limits.maxGamma ?? 32, MAX_GAMMA - 1);
  const gamma = int(x.gamma, 'gamma', mode === 'ar' ? 0 : 1, maxGamma);
  let seed: number | undefined;
  if (x.seed !== undefined && x.seed !== null) {
    try {
      validateSeed(x.seed as number);
    } catch (e) {
      bad(`seed: ${(e as Error).message}`);
    }
    seed = x.seed as number;
  }
  const dsdPrecision = x.dsdPrecision ?? 'f32';
  if (dsdPrecision !== 'f32' && dsdPrecision !== 'f16') bad(`dsdPrecision must be f32 or f16`);
  const candidates = x.candidates ?? 'auto';
  if (candidates !== 'auto') int(candidates, 'candidates', 1, 1024);
  const s: SessionSettings = {
    mode,
    codec,
    gamma,
    sampling: sampling(x.sampling, 'sampling'),
    draftSampling: sampling(x.draftSampling ?? x.sampling, 'draftSampling'),
    dsdPrecision: dsdPrecision as 'f32' | 'f16',
    topK: int(x.topK ?? 20, 'topK', 1, 1 << 20),
    candidates: candidates as number | 'auto',
  };
  if (seed !== undefined) s.seed = seed;
  return s;
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
