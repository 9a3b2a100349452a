import test from 'node:test';
import assert from 'node:assert/strict';
import {
  pipelineFirstBlock,
  pipelinedTokensPerSecond,
  serialTokensPerSecond,
  KernelError,
  KernelErrorCode,
  arTokenMs,
  bestGamma,
  dsdCommMs,
  dsdRoundExactMs,
  dsdRoundMs,
  dsdUplinkBits,
  dssdExpectedCommMs,
  dssdRoundExactMs,
  dssdRoundMs,
  dssdUplinkBytes,
  expectedTokensPerRound,
  notebookSpeedup,
  predict,
  rejectionProbability,
} from '../src/index.js';
import type { ModelParams, WireParams } from '../src/index.js';

// |V|·b/R_down = 50 000 · 16 bit / 100 Mbit/s = 8 ms, T_NTT = 20 ms: the parameters behind the paper's Table 1.
const TABLE1_LINK = { vocabSize: 50_000, bitsPerProb: 16, upRateBps: 100e6, downRateBps: 100e6, nttMs: 20 };

// Table 1 of the DSSD paper, verbatim: rows γ = 2, 4, 6, 8; columns α = 0.5, 0.6, 0.7, 0.8, 0.9, 0.99.
const TABLE1: Record<number, string[]> = {
  2: ['0.75 (26.00)', '0.64 (25.12)', '0.51 (24.08)', '0.36 (22.88)', '0.19 (21.52)', '0.02 (20.16)'],
  4: ['0.94 (27.50)', '0.87 (26.96)', '0.76 (26.08)', '0.59 (24.72)', '0.34 (22.75)', '0.04 (20.32)'],
  6: ['0.98 (27.88)', '0.95 (27.63)', '0.88 (27.06)', '0.74 (25.90)', '0.47 (23.75)', '0.06 (20.47)'],
  8: ['1.00 (27.97)', '0.98 (27.87)', '0.94 (27.54)', '0.83 (26.66)', '0.57 (24.56)', '0.08 (20.62)'],
};

test('reproduces all 24 cells of the paper Table 1 (1 − α^γ and E[T_comm], eq. 9)', () => {
  const alphas = [0.5, 0.6, 0.7, 0.8, 0.9, 0.99];
  let cells = 0;
  for (const [g, row] of Object.entries(TABLE1)) {
    alphas.forEach((alpha, c) => {
      const gamma = Number(g);
      const cell = `${rejectionProbability(alpha, gamma).toFixed(2)} (${dssdExpectedCommMs(alpha, gamma, TABLE1_LINK).toFixed(2)})`;
      assert.equal(cell, row[c], `γ=${gamma} α=${alpha}`);
      cells++;
    });
  }
  assert.equal(cells, 24);
});

test('notebook example S(α=0.61, γ=8, c=0.21, b=0) = 0.9456', () => {
  assert.equal(notebookSpeedup(0.61, 8, 0.21, 0).toFixed(4), '0.9456');
});

test('paper equations 4, 5, 7, 13 and expected tokens per round', () => {
  const p: ModelParams = { ...TABLE1_LINK, alpha: 0.8, tSlmMs: 5, tLlmMs: 40 };
  assert.equal(dsdUplinkBits(4, p), 4 * 50_000 * 16);
  assert.equal(dsdCommMs(4, p), 32 + 20);
  assert.equal(dsdRoundMs(4, p), 4 * 5 + 40 + 32 + 20);
  assert.ok(Math.abs(dssdRoundMs(0.8, 4, p) - (20 + 40 + (1 - 0.8 ** 4) * 8 + 20)) < 1e-12);
  assert.ok(Math.abs(expectedTokensPerRound(0.8, 4) - (1 - 0.8 ** 5) / 0.2) < 1e-12);
  assert.equal(expectedTokensPerRound(1, 4), 5);
  assert.equal(expectedTokensPerRound(0, 4), 1);
  const pred = predict('dssd', p, 4);
  assert.ok(Math.abs(pred.tokensPerSecond - (pred.tokensPerRound / pred.roundMs) * 1000) < 1e-9);
  assert.equal(
    arTokenMs({ ...p, tLlm1Ms: 30 }, 100, 4),
    30 + 20 + (800 / 100e6) * 1000 + (32 / 100e6) * 1000,
  );
  assert.equal(predict('ar', p, 4).tokensPerRound, 1);
});

test('exact variant charges the real frame sizes', () => {
  const p: ModelParams = {
    ...TABLE1_LINK,
    vocabSize: 151_936,
    upRateBps: 10e6,
    downRateBps: 50e6,
    alpha: 0.7,
    tSlmMs: 4,
    tLlmMs: 30,
  };
  const wire: WireParams = { uplinkHeaderBytes: 16, downlinkHeaderBytes: 12, distributionBytes: 2000 };
  // 18-bit ids: 5 ids → 90 bits → 12 bytes; 4 float32 q's = 16 bytes.
  assert.equal(dssdUplinkBytes(4, 151_936, wire), 16 + 12 + 16);
  const reject = 1 - 0.7 ** 4;
  const down = reject * (12 + 2000) + (1 - reject) * (12 + 3);
  const expected = 4 * 4 + 30 + 20 + ((44 * 8) / 10e6) * 1000 + ((down * 8) / 50e6) * 1000;
  assert.ok(Math.abs(dssdRoundExactMs(p, 4, wire) - expected) < 1e-9);
  // DSD: 4 ids (72 bits → 9 bytes) + 4 encoded Q's uplink, one id downlink.
  const dsd = 4 * 4 + 30 + 20 + (((16 + 9 + 8000) * 8) / 10e6) * 1000 + (((12 + 3) * 8) / 50e6) * 1000;
  assert.ok(Math.abs(dsdRoundExactMs(p, 4, wire) - dsd) < 1e-9);
});

test('bestGamma maximises predicted throughput over the candidates', () => {
  const p: ModelParams = { ...TABLE1_LINK, alpha: 0.8, tSlmMs: 6, tLlmMs: 40 };
  const best = bestGamma(p);
  for (let g = 1; g <= 16; g++) assert.ok(predict('dssd', p, g).tokensPerSecond <= best.tokensPerSecond);
  assert.ok(best.gamma > 1 && best.gamma < 16, `interior optimum expected, got ${best.gamma}`);
  // Slower drafts push γ down; α → 1 pushes it up.
  assert.ok(bestGamma({ ...p, tSlmMs: 30 }).gamma < best.gamma);
  assert.ok(bestGamma({ ...p, alpha: 0.97 }).gamma > best.gamma);
  assert.equal(bestGamma(p, [3]).gamma, 3);
  const dsd = bestGamma({ ...p, upRateBps: 10e6 }, undefined, { method: 'dsd' });
  assert.ok(dsd.gamma <= best.gamma);
  const bad = (e: unknown) => e instanceof KernelError && e.code === KernelErrorCode.InvalidArgument;
  assert.throws(() => bestGamma(p, []), bad);
  assert.throws(() => rejectionProbability(1.2, 2), bad);
  assert.throws(() => expectedTokensPerRound(0.5, 0), bad);
  assert.throws(() => dssdRoundMs(0.5, 2, { ...p, downRateBps: 0 }), bad);
});

test('pipelined model: a one-block window is serial rounds without the bonus; wider windows hide the round trip', () => {
  const base = { alpha: 0.75, draftMs: 7, passMs: (k: number) => 20.3 + 0.26 * k, rttMs: 20, block: 4 };
  const oneBlock = pipelinedTokensPerSecond({ ...base, window: 4, firstBlock: 4 });
  const perRound = (1 - 0.75 ** 4) / (1 - 0.75);
  const roundMs = 4 * 7 + 20 + base.passMs(4);
  assert.ok(Math.abs(oneBlock - (1000 * perRound) / roundMs) < 1e-9 * oneBlock);
  const wide = pipelinedTokensPerSecond({ ...base, window: 12, firstBlock: 4 });
  assert.ok(wide > oneBlock * 1.15, `${wide} vs ${oneBlock}`);
  // Never faster than drafting every token (no bonus), never faster than the edge can verify blocks.
  assert.ok(wide < 1000 / 7);
  assert.ok(serialTokensPerSecond(base) > 0);
});

test('pipelined model: a shorter first block shortens every epoch; blocks of g after it', () => {
  const base = { alpha: 0.78, draftMs: 7, passMs: (k: number) => 20.3 + 0.26 * k, rttMs: 20 };
  // Hand-worked α → 0 limit: every epoch is the first block's drafting, the round trip and one pass, rounded up
  // to the end of the draft the device is computing when the verdict arrives (it keeps drafting meanwhile).
  const epochMs = (f: number) => f * 7 + 7 * Math.ceil((20 + base.passMs(f)) / 7);
  for (const f of [1, 2, 4]) {
    const v = pipelinedTokensPerSecond({ ...base, alpha: 0, block: 4, window: 12, firstBlock: f });
    assert.ok(Math.abs(v - 1000 / epochMs(f)) < 1e-9 * v, `f ${f}: ${v}`);
  }
  // The device's rule and the model's default agree; at g = 4 the short first block wins at this α.
  assert.deepEqual([1, 2, 3, 4, 5, 6, 8].map(pipelineFirstBlock), [1, 2, 2, 2, 3, 3, 4]);
  const rule = pipelinedTokensPerSecond({ ...base, block: 4, window: 12 });
  assert.equal(rule, pipelinedTokensPerSecond({ ...base, block: 4, window: 12, firstBlock: 2 }));
  assert.ok(rule > pipelinedTokensPerSecond({ ...base, block: 4, window: 12, firstBlock: 4 }));
  const bad = (e: unknown) => e instanceof KernelError && e.code === KernelErrorCode.InvalidArgument;
  assert.throws(() => pipelinedTokensPerSecond({ ...base, block: 4, window: 12, firstBlock: 5 }), bad);
  assert.throws(() => pipelinedTokensPerSecond({ ...base, block: 4, window: 12, firstBlock: 0 }), bad);
});
