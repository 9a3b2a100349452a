/** Result rows: one per method × codec × γ × link profile × setting × target cost × shaping. */
import type { LinkProfile } from './shaper.js';
import type { Measurement, MethodSpec, SettingName } from './run.js';
import { alphaOf, inputsOf, predictRun } from './latency-model.js';
import type { GridCell } from './grid.js';
import type { TcCounters } from './netns.js';

export const SHAPING_SIMULATED = 'transport shaper (simulated)';
export const SHAPING_KERNEL =
  'kernel htb/tbf on loopback in a private network namespace + transport-shaper delay';

export interface Row {
  key: string;
  part: GridCell['part'];
  method: string;
  mode: string;
  codec: string | null;
  /** f16/topk downlink and f16 DSD uplink are lossy; labelled everywhere. */
  lossy: boolean;
  gamma: number;
  adaptive: boolean;
  meanGamma: number;
  profile: string;
  rttMs: number;
  upMbps: number;
  downMbps: number;
  loss: number;
  setting: SettingName;
  /** 'cpu': the real default target; 'emulated': each target pass padded to a + b·tokens ms (emulation). */
  target: 'cpu' | 'emulated';
  targetMs: { a: number; b: number } | null;
  shaping: string;
  /** Kernel-shaped rows: the qdisc used and what its classes counted (wire bytes per direction). */
  kernel?: TcCounters;
  prompts: number;
  generatedTokens: number;
  wallMs: number;
  tokensPerSecond: number;
  perPromptTokensPerSecond: number[];
  /** Per-prompt tokens and wall time, for paired intervals (absent in rows from before they were kept). */
  perPromptTokens?: number[];
  perPromptWallMs?: number[];
  /** roundsByGamma[γ]: rounds that drafted γ tokens, the adaptive controller's choices (absent in older rows). */
  roundsByGamma?: number[];
  /** tokens/s over the ar row of the same profile, setting, target and shaping in this results file. */
  speedupVsAr: number | null;
  meanAcceptanceLength: number;
  alpha: number;
  acceptancePerPosition: number[];
  rounds: number;
  uplinkBytesPerRound: number;
  downlinkBytesPerRound: number;
  uplinkBytesPerToken: number;
  downlinkBytesPerToken: number;
  messagesPerToken: number;
  llmForwardPassesPerToken: number;
  fallbacks: number;
  tSlmMs: number;
  tLlmMs: number;
  distributionBytes: number;
  predictedTokensPerSecond: number;
  predictedGamma: number;
  predictedSpeedup: number | null;
  finishedAt: string;
}

export function rowKey(
  c: { method: string; gamma: number; profile: string; setting: string },
  target: 'cpu' | 'emulated',
  shaping: string,
  tokens: number,
): string {
  return [c.method, c.gamma, c.profile, c.setting, target, shaping, tokens].join('|');
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

export function makeRow(
  cell: GridCell,
  method: MethodSpec,
  profile: LinkProfile,
  targetMs: { a: number; b: number } | null,
  shaping: string,
  m: Measurement,
  vocabSize: number,
  maxNewTokens: number,
  prompts: number,
): Row {
  const toks = Math.max(1, m.generatedTokens);
  const rounds = Math.max(1, m.rounds);
  const inp = inputsOf(m, method, vocabSize);
  const pred = predictRun(method, cell.gamma, inp, profile, m.generatedTokens / Math.max(1, prompts));
  const target = targetMs ? 'emulated' : 'cpu';
  return {
    key: rowKey(cell, target, shaping, maxNewTokens),
    part: cell.part,
    method: method.id,
    mode: method.mode,
    codec:
      method.mode === 'dssd'
        ? (method.codec ?? 'auto')
        : method.mode === 'dsd'
          ? (method.dsdPrecision ?? 'f32')
          : null,
    lossy:
      (method.mode === 'dssd' && (method.codec === 'f16' || method.codec === 'topk')) ||
      (method.mode === 'dsd' && method.dsdPrecision === 'f16'),
    gamma: cell.gamma,
    adaptive: !!method.adaptive,
    meanGamma: r3(m.gammas.length ? m.gammas.reduce((a, b) => a + b, 0) / m.gammas.length : 0),
    profile: profile.name,
    rttMs: profile.rttMs,
    upMbps: profile.upMbps,
    downMbps: profile.downMbps,
    loss: profile.loss ?? 0,
    setting: cell.setting,
    target,
    targetMs,
    shaping,
    prompts,
    generatedTokens: m.generatedTokens,
    wallMs: r3(m.wallMs),
    tokensPerSecond: r3((1000 * m.generatedTokens) / Math.max(1e-9, m.wallMs)),
    perPromptTokensPerSecond: m.perPromptTps.map(r3),
    perPromptTokens: m.perPromptTokens,
    perPromptWallMs: m.perPromptWallMs.map(r3),
    roundsByGamma: m.gammas.reduce<number[]>((h, g) => {
      for (let i = h.length; i <= g; i++) h.push(0);
      h[g]++;
      return h;
    }, []),
    speedupVsAr: null,
    meanAcceptanceLength: r3(m.spec.meanAcceptanceLength),
    alpha: r3(alphaOf(m)),
    acceptancePerPosition: m.spec.acceptancePerPosition.map(r3),
    rounds: m.rounds,
    uplinkBytesPerRound: r3(m.uplinkBytes / rounds),
    downlinkBytesPerRound: r3(m.downlinkBytes / rounds),
    uplinkBytesPerToken: r3(m.uplinkBytes / toks),
    downlinkBytesPerToken: r3(m.downlinkBytes / toks),
    messagesPerToken: r3((m.messagesUp + m.messagesDown) / toks),
    llmForwardPassesPerToken: r3(m.llmForwardPasses / toks),
    fallbacks: m.fallbacks,
    tSlmMs: r3(inp.tSlmMs),
    tLlmMs: r3(inp.tLlmMs),
    distributionBytes: Math.round(inp.distributionBytes),
    predictedTokensPerSecond: r3(pred.tokensPerSecond),
    predictedGamma: pred.gamma,
    predictedSpeedup: null,
    finishedAt: new Date().toISOString(),
  };
}

const groupKey = (r: Row) => [r.profile, r.setting, r.target, r.shaping].join('|');

/** Fills speedupVsAr and predictedSpeedup from the ar row of each group. */
export function fillSpeedups(rows: Row[]): void {
  const ar = new Map<string, Row>();
  for (const r of rows) if (r.mode === 'ar') ar.set(groupKey(r), r);
  for (const r of rows) {
    const a = ar.get(groupKey(r));
    r.speedupVsAr = a ? r3(r.tokensPerSecond / a.tokensPerSecond) : null;
    r.predictedSpeedup = a ? r3(r.predictedTokensPerSecond / a.predictedTokensPerSecond) : null;
  }
}
