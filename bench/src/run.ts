/**
 * One benchmark run: the real default models through the real protocol state machines (EdgeSession with the
 * target, DeviceSession with the draft) in this process, joined by the transport shaper. Everything measured
 * here comes from the sessions' own counters: device TurnStats (bytes and messages as sent, chunk headers
 * included), the edge's per-pass timings, and SpecStats for acceptance.
 */
import { SpecStats, type SamplingParams } from '@dssd/kernel';
import type { LanguageModel, ModelSession } from '@dssd/models';
import {
  EdgeSession,
  FrameTransport,
  gammaFor,
  identityOf,
  openDevice,
  type DeviceSession,
  type DownlinkCodec,
  type Mode,
  type RawChannel,
  type TargetCost,
  type TurnStats,
} from '@dssd/protocol';
import { shapedChannelPair, type LinkProfile } from './shaper.js';

export type SettingName = 'greedy' | 't1' | 'topk10';

export const SETTINGS: Record<SettingName, { label: string; sampling: SamplingParams }> = {
  greedy: { label: 'greedy', sampling: { temperature: 0, topK: 0, topP: 1 } },
  t1: { label: 'temperature 1', sampling: { temperature: 1, topK: 0, topP: 1 } },
  topk10: { label: 'top-k 10, temperature 1', sampling: { temperature: 1, topK: 10, topP: 1 } },
};

/** A method as the tables name it: ar, dsd-f32, dsd-f16, dssd-<codec>, dssd-auto+adaptive. */
export interface MethodSpec {
  id: string;
  mode: Mode;
  codec?: DownlinkCodec;
  dsdPrecision?: 'f32' | 'f16';
  adaptive?: boolean;
  /** Pipelined drafting (dssd): blocks of γ, a window of PIPELINE.windowBlocks blocks. */
  pipeline?: boolean;
}

export const METHODS: Record<string, MethodSpec> = {
  ar: { id: 'ar', mode: 'ar' },
  'dsd-f32': { id: 'dsd-f32', mode: 'dsd', dsdPrecision: 'f32' },
  'dsd-f16': { id: 'dsd-f16', mode: 'dsd', dsdPrecision: 'f16' },
  'dssd-f32': { id: 'dssd-f32', mode: 'dssd', codec: 'f32' },
  'dssd-f16': { id: 'dssd-f16', mode: 'dssd', codec: 'f16' },
  'dssd-sparse': { id: 'dssd-sparse', mode: 'dssd', codec: 'sparse' },
  'dssd-topk': { id: 'dssd-topk', mode: 'dssd', codec: 'topk' },
  'dssd-candidates': { id: 'dssd-candidates', mode: 'dssd', codec: 'candidates' },
  'dssd-auto': { id: 'dssd-auto', mode: 'dssd', codec: 'auto' },
  'dssd-adaptive': { id: 'dssd-adaptive', mode: 'dssd', codec: 'auto', adaptive: true },
  'dssd-pipelined': { id: 'dssd-pipelined', mode: 'dssd', codec: 'auto', pipeline: true },
};

export interface Models {
  target: LanguageModel;
  draft: LanguageModel;
}

/** How a run's device and edge channels are made (the transport shaper by default). */
export type ChannelFactory = (
  profile: LinkProfile,
  seed: number,
) => Promise<{ device: RawChannel; edge: RawChannel; close?: () => void }>;

export const simulatedChannels: ChannelFactory = async (profile, seed) => {
  const p = shapedChannelPair(profile, seed);
  return { device: p.device, edge: p.edge };
};

export interface RunSpec {
  method: MethodSpec;
  /** Draft length (the upper bound with adaptive γ; ignored for ar). */
  gamma: number;
  profile: LinkProfile;
  setting: SettingName;
  /** Emulated target cost: each forward padded to a + b·tokens ms (null: the real CPU target). */
  targetMs: TargetCost | null;
  prompts: number[][];
  maxNewTokens: number;
  seed: number;
  /** EMULATION: each drafted token padded to this many ms (a browser draft's cost); 0 or absent: real. */
  draftMs?: number;
}

/** Raw totals of one run, summed over its prompts. */
export interface Measurement {
  generatedTokens: number;
  wallMs: number;
  rounds: number;
  llmForwardPasses: number;
  uplinkBytes: number;
  downlinkBytes: number;
  messagesUp: number;
  messagesDown: number;
  draftMs: number;
  /** Tokens drafted, verified or wasted (draftMs / draftSteps: the cost of one draft). */
  draftSteps: number;
  draftedTokens: number;
  /** Edge target passes: median ms (verify pass, or one AR step) including any emulation padding. */
  edgePassMedianMs: number;
  /** Median tokens fed per edge pass (γ+1 in steady state). */
  edgePassTokens: number;
  /** Rounds that ended in a rejection (P_j or a resampled token downlink). */
  rejectRounds: number;
  fallbacks: number;
  /** Drafted tokens discarded unverified or beyond a rejection (pipelined drafting's cost). */
  wastedDrafts: number;
  spec: ReturnType<SpecStats['toJSON']>;
  gammas: number[];
  /** Per-prompt tokens/s, to show the spread. */
  perPromptTps: number[];
  /** Per-prompt tokens and wall time (prompt i runs with seed + i in every method: a paired comparison). */
  perPromptTokens: number[];
  perPromptWallMs: number[];
}

function median(xs: number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** One prompt through one fresh session pair. */
async function runPrompt(
  models: Models,
  spec: RunSpec,
  prompt: number[],
  seed: number,
  channels: ChannelFactory,
): Promise<PromptResult> {
  const ch = await channels(spec.profile, seed);
  const edgeT = new FrameTransport(ch.edge);
  let target: ModelSession | null = null;
  const passMs: number[] = [];
  const edge = new EdgeSession({
    sessionId: 1,
    model: identityOf(models.target),
    createTarget: () => (target = models.target.createSession()),
    secretSeed: seed,
    ...(spec.targetMs ? { targetCost: spec.targetMs } : {}),
    send: (f) => edgeT.send(f),
    onVerify: (ms) => passMs.push(ms),
  });
  edgeT.onFrame((f) => void edge.handle(f));
  const m = spec.method;
  const drafter = m.mode === 'ar' ? undefined : models.draft.createSession();
  const sampling = SETTINGS[spec.setting].sampling;
  let device: DeviceSession | null = null;
  try {
    device = await openDevice({
      channel: async () => ch.device,
      model: identityOf(models.draft),
      drafter,
      settings: {
        mode: m.mode,
        gamma: gammaFor(m.mode, spec.gamma),
        codec: m.codec ?? 'auto',
        dsdPrecision: m.dsdPrecision ?? 'f32',
        sampling,
        seed,
        pipeline: m.pipeline ?? false,
      },
      adaptiveGamma: m.adaptive ?? false,
      draftCostMs: spec.draftMs ?? 0,
      timeoutMs: 60_000,
    });
    const r = await device.generate(prompt, { maxNewTokens: spec.maxNewTokens });
    await edge.idle();
    const { forwardPasses, tokensScored } = edge.metrics;
    return { stats: r.stats, passMs, passTokens: forwardPasses ? [tokensScored / forwardPasses] : [] };
  } finally {
    device?.close();
    edge.close();
    ch.close?.();
    drafter?.dispose();
    (target as ModelSession | null)?.dispose();
  }
}

/** Runs every prompt of the spec in this process over the transport shaper (or `channels`). */
export async function runSpec(
  models: Models,
  spec: RunSpec,
  channels: ChannelFactory = simulatedChannels,
): Promise<Measurement> {
  return runSpecWith(spec, (prompt, seed) => runPrompt(models, spec, prompt, seed, channels));
}

/** One prompt's device stats and the edge's pass timings (ms per pass, in order; the first one prefills). */
export interface PromptResult {
  stats: TurnStats;
  passMs: number[];
  passTokens: number[];
}

/** Runs every prompt of the spec with `run` (each with its own session and seed) and sums the figures. */
export async function runSpecWith(
  spec: RunSpec,
  run: (prompt: number[], seed: number) => Promise<PromptResult>,
): Promise<Measurement> {
  const spec0 = new SpecStats();
  const out: Measurement = {
    generatedTokens: 0,
    wallMs: 0,
    rounds: 0,
    llmForwardPasses: 0,
    uplinkBytes: 0,
    downlinkBytes: 0,
    messagesUp: 0,
    messagesDown: 0,
    draftMs: 0,
    draftSteps: 0,
    draftedTokens: 0,
    edgePassMedianMs: 0,
    edgePassTokens: 0,
    rejectRounds: 0,
    fallbacks: 0,
    wastedDrafts: 0,
    spec: spec0.toJSON(),
    gammas: [],
    perPromptTps: [],
    perPromptTokens: [],
    perPromptWallMs: [],
  };
  const allPass: number[] = [];
  const passTok: number[] = [];
  for (let i = 0; i < spec.prompts.length; i++) {
    const { stats: s, passMs, passTokens } = await run(spec.prompts[i], spec.seed + i);
    out.generatedTokens += s.generatedTokens;
    out.wallMs += s.wallMs;
    out.rounds += s.rounds;
    out.llmForwardPasses += s.llmForwardPasses;
    out.uplinkBytes += s.uplinkBytes;
    out.downlinkBytes += s.downlinkBytes;
    out.messagesUp += s.messagesUp;
    out.messagesDown += s.messagesDown;
    out.draftMs += s.draftMs;
    out.draftSteps += s.draftSteps;
    out.draftedTokens += s.draftedTokens;
    out.rejectRounds += s.resampledTokens;
    out.fallbacks += s.fallbacks;
    out.wastedDrafts += s.wastedDrafts;
    out.gammas.push(...s.gammas);
    out.perPromptTps.push(s.tokensPerSecond);
    out.perPromptTokens.push(s.generatedTokens);
    out.perPromptWallMs.push(s.wallMs);
    // Skip each session's first pass: it also prefills the prompt.
    allPass.push(...passMs.slice(1));
    passTok.push(...passTokens);
    spec0.merge({
      rounds: s.rounds,
      drafts: s.drafts,
      draftedTokens: s.draftedTokens,
      acceptedTokens: s.acceptedTokens,
      bonusTokens: s.bonusTokens,
      resampledTokens: s.resampledTokens,
      fallbacks: s.fallbacks,
      fullRequests: 0,
      // TurnStats carries rates per position; rebuild counts from them (exact up to rounding).
      draftedAtPosition: positionsDrafted(s.gammas),
      acceptedAtPosition: positionsDrafted(s.gammas).map((d, k) =>
        Math.round(d * (s.acceptancePerPosition[k] ?? 0)),
      ),
      meanAcceptanceLength: 0,
      acceptanceRate: 0,
      acceptancePerPosition: [],
    });
  }
  out.edgePassMedianMs = median(allPass);
  out.edgePassTokens = median(passTok);
  out.spec = spec0.toJSON();
  return out;
}

/** draftedAtPosition from the γ of each round (rounds that drafted at least k+1 tokens). */
function positionsDrafted(gammas: number[]): number[] {
  const max = Math.max(0, ...gammas);
  const out = new Array<number>(max).fill(0);
  for (const g of gammas) for (let k = 0; k < g; k++) out[k]++;
  return out;
}
