/**
 * The analytical model beside each measurement (@dssd/kernel latency.ts fed with the measured T_SLM, T_LLM, α
 * and frame sizes, and the link profile), and the scale projection to realistic hardware pairs.
 */
import { CHUNK_HEADER_SIZE, HEADER_SIZE } from '@dssd/codec';
import { bestGamma, predict, type ModelParams, type WireParams } from '@dssd/kernel';
import { PACKET_OVERHEAD, PACKET_PAYLOAD, type LinkProfile } from './shaper.js';
import type { Measurement, MethodSpec } from './run.js';

/** Fixed bytes per frame on the wire: frame header, chunk header, one packet's headers. */
export const FRAME_OVERHEAD = HEADER_SIZE + CHUNK_HEADER_SIZE + PACKET_OVERHEAD;
const PACKET_FACTOR = 1 + PACKET_OVERHEAD / PACKET_PAYLOAD;

export interface ModelInputs {
  vocabSize: number;
  /** T_SLM: draft time per drafted token, ms (forward + logits processing + sampling). */
  tSlmMs: number;
  /** T_LLM: median edge verify pass (or AR step), ms. */
  tLlmMs: number;
  /** i.i.d. acceptance estimate: accepted / positions tested. */
  alpha: number;
  /** Encoded distribution bytes (P_j downlink for dssd, each Q_i uplink for dsd), packet headers included. */
  distributionBytes: number;
}

export function alphaOf(m: Measurement): number {
  const tested = m.spec.acceptedTokens + m.rejectRounds;
  return tested ? Math.min(1, m.spec.acceptedTokens / tested) : 0;
}

/** Derives the model's inputs from a run's own counters. */
export function inputsOf(m: Measurement, method: MethodSpec, vocabSize: number): ModelInputs {
  const idBytes = Math.ceil(Math.log2(vocabSize) / 8);
  const rounds = Math.max(1, m.rounds);
  const meanGamma = m.gammas.length ? m.gammas.reduce((a, b) => a + b, 0) / m.gammas.length : 0;
  let dist = 0;
  if (method.mode === 'dssd' && m.rejectRounds > 0) {
    const acceptRounds = rounds - m.rejectRounds;
    dist =
      (m.downlinkBytes - rounds * (HEADER_SIZE + CHUNK_HEADER_SIZE) - acceptRounds * idBytes) /
      m.rejectRounds;
  } else if (method.mode === 'dsd' && meanGamma > 0) {
    dist =
      (m.uplinkBytes / rounds -
        HEADER_SIZE -
        CHUNK_HEADER_SIZE -
        Math.ceil((meanGamma * Math.log2(vocabSize)) / 8)) /
      meanGamma;
  }
  return {
    vocabSize,
    tSlmMs: m.draftedTokens ? m.draftMs / m.draftedTokens : 0,
    tLlmMs: m.edgePassMedianMs,
    alpha: alphaOf(m),
    distributionBytes: Math.max(0, dist) * PACKET_FACTOR,
  };
}

function params(inp: ModelInputs, link: LinkProfile, tLlm1Ms?: number): ModelParams {
  return {
    vocabSize: inp.vocabSize,
    bitsPerProb: 32,
    upRateBps: link.upMbps * 1e6,
    downRateBps: link.downMbps * 1e6,
    nttMs: link.rttMs,
    tSlmMs: inp.tSlmMs,
    tLlmMs: inp.tLlmMs,
    ...(tLlm1Ms !== undefined ? { tLlm1Ms } : {}),
    alpha: Math.min(0.999999, inp.alpha),
  };
}

function wire(inp: ModelInputs): WireParams {
  return {
    uplinkHeaderBytes: FRAME_OVERHEAD,
    downlinkHeaderBytes: FRAME_OVERHEAD,
    distributionBytes: inp.distributionBytes,
  };
}

export interface PredictionOut {
  tokensPerSecond: number;
  /** γ the prediction is for (adaptive: the model's best γ). */
  gamma: number;
}

/**
 * Predicted tokens/s. Edge-only `ar` streams: the edge generates back to back and each token's frame overlaps
 * the next step, so a turn costs one RTT plus n steps (the paper's per-token T_NTT does not apply).
 */
export function predictRun(
  method: MethodSpec,
  gamma: number,
  inp: ModelInputs,
  link: LinkProfile,
  tokensPerTurn: number,
  maxGamma = 8,
): PredictionOut {
  if (method.mode === 'ar') {
    const perToken = inp.tLlmMs + link.rttMs / Math.max(1, tokensPerTurn);
    return { tokensPerSecond: 1000 / perToken, gamma: 0 };
  }
  const p = params(inp, link);
  if (method.adaptive) {
    const b = bestGamma(
      p,
      Array.from({ length: maxGamma }, (_, i) => i + 1),
      { method: method.mode, wire: wire(inp) },
    );
    return { tokensPerSecond: b.tokensPerSecond, gamma: b.gamma };
  }
  return { tokensPerSecond: predict(method.mode, p, gamma, wire(inp)).tokensPerSecond, gamma };
}

/** A hardware pair for the projection (assumptions stated in every output). */
export interface HardwarePair {
  name: string;
  /** Draft time per token, ms. */
  tSlmMs: number;
  /** Target pass: a + b·tokens ms. */
  target: { a: number; b: number };
  vocabSize: number;
}

export const HARDWARE_PAIRS: HardwarePair[] = [
  {
    name: '0.5B draft in a browser (WebGPU, ~12 ms/token) + 7B target on an edge GPU (25 ms + 0.5 ms/token)',
    tSlmMs: 12,
    target: { a: 25, b: 0.5 },
    vocabSize: 151_936,
  },
  {
    name: '0.5B draft on a phone CPU (~30 ms/token) + 7B target on an edge GPU (25 ms + 0.5 ms/token)',
    tSlmMs: 30,
    target: { a: 25, b: 0.5 },
    vocabSize: 151_936,
  },
  {
    name: '1.5B draft in a browser (WebGPU, ~25 ms/token) + 32B target on an edge GPU (60 ms + 1 ms/token)',
    tSlmMs: 25,
    target: { a: 60, b: 1 },
    vocabSize: 151_936,
  },
];

export interface ProjectionCodec {
  id: string;
  /** Downlink P_j bytes (dssd) or uplink bytes per Q_i (dsd) at this |V|. */
  bytes: (vocabSize: number) => number;
  mode: 'dssd' | 'dsd' | 'ar';
}

/**
 * Tokens/s at γ from measured acceptance per position a_k (P[first k drafts accepted]): a round emits
 * 1 + Σ_{k≤γ} a_k tokens and rejects with probability 1 − a_γ.
 */
export function projectTokensPerSecond(
  pair: HardwarePair,
  link: LinkProfile,
  acceptance: number[],
  gamma: number,
  codec: ProjectionCodec,
  tokensPerTurn = 128,
): number {
  const V = pair.vocabSize;
  const idBits = Math.ceil(Math.log2(V));
  const ser = (bytes: number, mbps: number) => ((bytes * PACKET_FACTOR * 8) / (mbps * 1e6)) * 1000;
  if (codec.mode === 'ar') {
    const step = pair.target.a + pair.target.b;
    return 1000 / (step + link.rttMs / tokensPerTurn);
  }
  const g = Math.min(gamma, acceptance.length);
  let tokens = 1;
  for (let k = 0; k < g; k++) tokens += acceptance[k];
  const reject = 1 - (acceptance[g - 1] ?? 0);
  const hdr = FRAME_OVERHEAD;
  const idBytes = Math.ceil(idBits / 8);
  let up: number;
  let down: number;
  if (codec.mode === 'dsd') {
    up = hdr + Math.ceil((g * idBits) / 8) + g * codec.bytes(V);
    down = hdr + idBytes;
  } else {
    up = hdr + Math.ceil(((g + 1) * idBits) / 8) + 4 * g;
    down = hdr + reject * codec.bytes(V) + (1 - reject) * idBytes;
  }
  const roundMs =
    g * pair.tSlmMs +
    pair.target.a +
    pair.target.b * (g + 1) +
    link.rttMs +
    ser(up, link.upMbps) +
    ser(down, link.downMbps);
  return (1000 * tokens) / roundMs;
}
