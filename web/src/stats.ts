/** What the page shows after (and during) a turn, derived from the protocol's TurnStats. Pure. */
import { chunkedSize, dsdDraftFrameSize, draftFrameSize } from '@dssd/codec';
import type { Mode, TurnStats } from '@dssd/protocol';

export interface DisplayStats {
  mode: Mode;
  tokens: number;
  tokensPerSecond: number;
  /** Accepted draft tokens per verify round (0 in ar). */
  meanAcceptanceLength: number;
  /** Accepted / drafted, in [0, 1] (0 when nothing was drafted). */
  acceptanceRate: number;
  acceptancePerPosition: number[];
  uplinkBytesPerToken: number;
  downlinkBytesPerToken: number;
  /** Draft-frame uplink this turn sent, per token. */
  draftUplinkBytesPerToken: number;
  /** What DSD's draft frames (γ full f32 distributions per round) would have sent for the same rounds. */
  dsdUplinkBytesPerToken: number;
  rounds: number;
  /** Drafted tokens thrown away per generated token (pipelined drafting drafts ahead of the verdicts). */
  wastedDraftsPerToken: number;
  /**
   * Tokens this turn fed before generating (prompt, and with a chat template its role markers) and tokens of the
   * conversation it kept in both KV caches; absent when the page does not know them.
   */
  prefilled?: number;
  reused?: number;
}

/**
 * Per-token numbers. The DSD comparison counts the same rounds with dsdDraftFrameSize (after chunking), so it
 * reads "what the uplink would have been had each round sent Q's instead of q's".
 */
export function displayStats(
  mode: Mode,
  t: TurnStats,
  vocabSize: number,
  prefill?: { prefilled: number; reused: number },
): DisplayStats {
  const n = Math.max(1, t.generatedTokens);
  let draftUp = 0;
  let dsdUp = 0;
  if (mode !== 'ar') {
    for (const g of t.gammas.slice(0, t.rounds)) {
      draftUp += chunkedSize(draftFrameSize(g, vocabSize));
      dsdUp += chunkedSize(dsdDraftFrameSize(g, vocabSize, 'f32'));
    }
  }
  return {
    mode,
    tokens: t.generatedTokens,
    tokensPerSecond: t.tokensPerSecond,
    meanAcceptanceLength: t.meanAcceptanceLength,
    acceptanceRate: t.draftedTokens > 0 ? t.acceptedTokens / t.draftedTokens : 0,
    acceptancePerPosition: t.acceptancePerPosition,
    uplinkBytesPerToken: t.uplinkBytes / n,
    downlinkBytesPerToken: t.downlinkBytes / n,
    draftUplinkBytesPerToken: (mode === 'dsd' ? dsdUp : draftUp) / n,
    dsdUplinkBytesPerToken: dsdUp / n,
    rounds: t.rounds,
    wastedDraftsPerToken: t.wastedDrafts / n,
    ...(prefill ? { prefilled: prefill.prefilled, reused: prefill.reused } : {}),
  };
}

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

/** What each figure means, shown as its tooltip (key: the element's data-stat). */
export const STAT_HELP: Readonly<Record<string, string>> = {
  tokens: 'Tokens generated in this answer.',
  tps: 'Generated tokens per second of wall time: both models, the network and the page together.',
  mal:
    'Tokens per round trip (mean acceptance length): accepted draft tokens plus the edge’s own token, per ' +
    'verify round. Higher means fewer round trips to the edge.',
  acceptance: 'Share of the drafted tokens the edge accepted.',
  perpos: 'For each draft position 1…γ: the share of rounds in which the edge accepted the token there.',
  passes: 'Target forward passes on the edge per generated token (one per round; 1 in edge-only mode).',
  up: 'Bytes the device sent to the edge per generated token (application bytes, chunk headers included).',
  down: 'Bytes the edge sent to the device per generated token.',
  wasted:
    'Drafted tokens thrown away per generated token: pipelined drafting keeps drafting while verdicts are in ' +
    'flight, and a rejection discards what was drafted beyond it.',
  prefill:
    'Tokens this turn fed to both models before answering (your prompt, with a chat template its role markers), ' +
    'and in brackets the tokens of the conversation kept in their KV caches, which are not computed again.',
  dsdup:
    'What the uplink would have been, per token, had each round sent the draft’s full distributions (DSD, ' +
    'float32) instead of one probability per drafted token.',
};

/** Edge passes per token: one target pass per verify round (ar: one per token). */
function passesPerToken(s: DisplayStats): number {
  return s.mode === 'ar' ? 1 : s.rounds / Math.max(1, s.tokens);
}

/** Label/value pairs for the statistics panel (value strings; the key is the element's data-stat). */
export function statRows(s: DisplayStats): [key: string, label: string, value: string][] {
  const rows: [string, string, string][] = [
    ['tokens', 'tokens', String(s.tokens)],
    ['tps', 'tokens per second', fmt(s.tokensPerSecond)],
  ];
  if (s.prefilled !== undefined)
    rows.push(['prefill', 'prefilled tokens', `${s.prefilled} (${s.reused ?? 0} reused from the caches)`]);
  if (s.mode !== 'ar') {
    rows.push(
      ['mal', 'tokens per round trip', fmt(s.meanAcceptanceLength, 2)],
      ['acceptance', 'drafts accepted', fmt(s.acceptanceRate, 3)],
      ['perpos', 'accepted by position', s.acceptancePerPosition.map((a) => fmt(a, 2)).join(' ')],
    );
  }
  rows.push(
    ['passes', 'edge passes per token', fmt(passesPerToken(s), 2)],
    ['up', 'uplink bytes per token', fmt(s.uplinkBytesPerToken)],
    ['down', 'downlink bytes per token', fmt(s.downlinkBytesPerToken)],
  );
  if (s.mode !== 'ar') {
    rows.push(['wasted', 'wasted drafts per token', fmt(s.wastedDraftsPerToken, 2)]);
    rows.push(['dsdup', 'DSD uplink bytes per token', fmt(s.dsdUplinkBytesPerToken, 0)]);
  }
  return rows;
}

/** The headline figures: "3.2 tokens per round trip · 19 B up per token · 0.31 edge passes per token". */
export function headline(s: DisplayStats): [key: string, text: string][] {
  const first: [string, string] =
    s.mode === 'ar'
      ? ['tps', `${fmt(s.tokensPerSecond)} tokens per second, edge only`]
      : ['mal', `${fmt(s.meanAcceptanceLength, 1)} tokens per round trip`];
  return [
    first,
    ['up', `${fmt(s.uplinkBytesPerToken, 0)} B up per token`],
    ['passes', `${fmt(passesPerToken(s), 2)} edge passes per token`],
  ];
}
