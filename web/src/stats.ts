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
}

/**
 * Per-token numbers. The DSD comparison counts the same rounds with dsdDraftFrameSize (after chunking), so it
 * reads "what the uplink would have been had each round sent Q's instead of q's".
 */
export function displayStats(mode: Mode, t: TurnStats, vocabSize: number): DisplayStats {
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
  };
}

const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–');

/** Label/value pairs for the statistics panel (value strings; the key is the element's data-stat). */
export function statRows(s: DisplayStats): [key: string, label: string, value: string][] {
  const rows: [string, string, string][] = [
    ['tokens', 'tokens', String(s.tokens)],
    ['tps', 'tokens/s', fmt(s.tokensPerSecond)],
  ];
  if (s.mode !== 'ar') {
    rows.push(
      ['mal', 'mean acceptance length', fmt(s.meanAcceptanceLength, 2)],
      ['acceptance', 'acceptance rate', fmt(s.acceptanceRate, 3)],
      ['perpos', 'acceptance per position', s.acceptancePerPosition.map((a) => fmt(a, 2)).join(' ')],
    );
  }
  rows.push(
    ['up', 'uplink bytes/token', fmt(s.uplinkBytesPerToken)],
    ['down', 'downlink bytes/token', fmt(s.downlinkBytesPerToken)],
  );
  if (s.mode !== 'ar')
    rows.push(['dsdup', 'DSD would uplink (bytes/token)', fmt(s.dsdUplinkBytesPerToken, 0)]);
  return rows;
}
