/**
 * Latency and communication model. The paper's equations (DSSD paper §2.2, §3.1; numbers in comments are its
 * equation numbers) plus an exact variant of our own that charges the real frame sizes. Byte sizes of encoded
 * distributions are parameters, so this package does not depend on the codec.
 *
 * Units: times in milliseconds, rates in bits per second, sizes in bits (paper formulas) or bytes (exact variant).
 * α is the per-token acceptance probability (i.i.d. model of Leviathan et al.).
 */
import { KernelError, KernelErrorCode } from './errors.js';

/** Link and vocabulary parameters. */
export interface LinkParams {
  /** |V|. */
  vocabSize: number;
  /** b_prob: bits per probability value in a full distribution (32 or 16 in the paper). */
  bitsPerProb: number;
  /** R_up in bit/s. */
  upRateBps: number;
  /** R_down in bit/s. */
  downRateBps: number;
  /** T_NTT: non-transmission time per round trip (propagation, processing, queueing), ms. */
  nttMs: number;
}

/** Compute times. */
export interface ComputeParams {
  /** T_SLM: one draft forward pass, ms. */
  tSlmMs: number;
  /** T_LLM: one parallel verification pass over γ+1 positions, ms. */
  tLlmMs: number;
  /** T_LLM1: one single-token target forward pass (AR baseline), ms; defaults to tLlmMs. */
  tLlm1Ms?: number;
}

/** Everything the round model needs. */
export interface ModelParams extends LinkParams, ComputeParams {
  /** α in [0, 1]. */
  alpha: number;
}

/** Frame sizes for the exact variant. */
export interface WireParams {
  /** Fixed bytes per uplink frame (headers, round/turn ids, framing). */
  uplinkHeaderBytes: number;
  /** Fixed bytes per downlink frame (headers, j). */
  downlinkHeaderBytes: number;
  /** Bytes of one encoded distribution (DSSD: P_j downlink; DSD: each Q_i uplink), for the chosen encoding. */
  distributionBytes: number;
  /** Bits per packed token id; defaults to ceil(log2 |V|). */
  idBits?: number;
}

/** Speculative or baseline method. */
export type Method = 'ar' | 'dsd' | 'dssd';

/** Model prediction for one round of a method at one γ. */
export interface Prediction {
  method: Method;
  gamma: number;
  /** Expected wall-clock time of one round (one token for AR), ms. */
  roundMs: number;
  /** Expected tokens emitted per round. */
  tokensPerRound: number;
  /** tokensPerRound / roundMs, in tokens per second. */
  tokensPerSecond: number;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new KernelError(KernelErrorCode.InvalidArgument, message);
}

function checkAlpha(alpha: number): void {
  check(alpha >= 0 && alpha <= 1, `alpha must be in [0, 1], got ${alpha}`);
}

function checkGamma(gamma: number): void {
  check(Number.isSafeInteger(gamma) && gamma >= 1, `gamma must be an integer >= 1, got ${gamma}`);
}

function checkLink(p: LinkParams): void {
  check(Number.isSafeInteger(p.vocabSize) && p.vocabSize >= 1, `vocabSize must be an integer >= 1`);
  check(p.bitsPerProb > 0, `bitsPerProb must be > 0, got ${p.bitsPerProb}`);
  check(p.upRateBps > 0, `upRateBps must be > 0, got ${p.upRateBps}`);
  check(p.downRateBps > 0, `downRateBps must be > 0, got ${p.downRateBps}`);
  check(p.nttMs >= 0, `nttMs must be >= 0, got ${p.nttMs}`);
}

function checkCompute(p: ComputeParams): void {
  check(p.tSlmMs >= 0, `tSlmMs must be >= 0, got ${p.tSlmMs}`);
  check(p.tLlmMs >= 0, `tLlmMs must be >= 0, got ${p.tLlmMs}`);
  check(p.tLlm1Ms === undefined || p.tLlm1Ms >= 0, `tLlm1Ms must be >= 0, got ${p.tLlm1Ms}`);
}

/** Serialisation time of `bits` at `rateBps`, ms (eqs. 1, 2). */
export function transferMs(bits: number, rateBps: number): number {
  check(bits >= 0 && rateBps > 0, `transferMs needs bits >= 0 and rate > 0`);
  return (bits / rateBps) * 1000;
}

/** (4) DSD uplink bits per round: γ·|V|·b (token ids neglected, as in the paper). */
export function dsdUplinkBits(gamma: number, link: Pick<LinkParams, 'vocabSize' | 'bitsPerProb'>): number {
  checkGamma(gamma);
  return gamma * link.vocabSize * link.bitsPerProb;
}

/** (5) DSD communication time per round: γ·|V|·b/R_up + T_NTT. */
export function dsdCommMs(gamma: number, link: LinkParams): number {
  checkLink(link);
  return transferMs(dsdUplinkBits(gamma, link), link.upRateBps) + link.nttMs;
}

/** (7) DSD round time: γ·T_SLM + T_LLM + γ·|V|·b/R_up + T_NTT. */
export function dsdRoundMs(gamma: number, params: LinkParams & ComputeParams): number {
  checkCompute(params);
  return gamma * params.tSlmMs + params.tLlmMs + dsdCommMs(gamma, params);
}

/** 1 − α^γ: probability that some draft of the round is rejected, i.e. that P_j goes downlink. */
export function rejectionProbability(alpha: number, gamma: number): number {
  checkAlpha(alpha);
  checkGamma(gamma);
  return 1 - alpha ** gamma;
}

/** (9) DSSD expected communication time: (1 − α^γ)·|V|·b/R_down + T_NTT (uplink neglected, as in the paper). */
export function dssdExpectedCommMs(alpha: number, gamma: number, link: LinkParams): number {
  checkLink(link);
  const full = transferMs(link.vocabSize * link.bitsPerProb, link.downRateBps);
  return rejectionProbability(alpha, gamma) * full + link.nttMs;
}

/** (13) DSSD round time: γ·T_SLM + T_LLM + (1 − α^γ)·|V|·b/R_down + T_NTT. */
export function dssdRoundMs(alpha: number, gamma: number, params: LinkParams & ComputeParams): number {
  checkCompute(params);
  return gamma * params.tSlmMs + params.tLlmMs + dssdExpectedCommMs(alpha, gamma, params);
}

/** E[tokens per round] = (1 − α^{γ+1})/(1 − α), and γ+1 at α = 1 (Leviathan et al.). */
export function expectedTokensPerRound(alpha: number, gamma: number): number {
  checkAlpha(alpha);
  checkGamma(gamma);
  return alpha === 1 ? gamma + 1 : (1 - alpha ** (gamma + 1)) / (1 - alpha);
}

/** Tokens per second from tokens per round and round time in ms. */
export function throughput(tokensPerRound: number, roundMs: number): number {
  check(roundMs > 0, `roundMs must be > 0, got ${roundMs}`);
  return (tokensPerRound / roundMs) * 1000;
}

/**
 * The speed-up formula of the authors' notebook (results/EXP_cacl.ipynb): Leviathan's improvement factor with a
 * communication ratio b added, S = (1 − α^{γ+1}) / ((1 − α)(c·γ + b + 1)), c = T_SLM/T_LLM.
 */
export function notebookSpeedup(alpha: number, gamma: number, c: number, b: number): number {
  check(c >= 0 && b >= 0, `c and b must be >= 0`);
  return expectedTokensPerRound(alpha, gamma) / (c * gamma + b + 1);
}

/** Edge-only AR: T_LLM1 + T_NTT + the (small) per-token payloads, ms per token. */
export function arTokenMs(params: LinkParams & ComputeParams, uplinkBytes = 0, downlinkBytes = 0): number {
  checkLink(params);
  checkCompute(params);
  return (
    (params.tLlm1Ms ?? params.tLlmMs) +
    params.nttMs +
    transferMs(uplinkBytes * 8, params.upRateBps) +
    transferMs(downlinkBytes * 8, params.downRateBps)
  );
}

function idBitsFor(vocabSize: number, wire: WireParams): number {
  return wire.idBits ?? Math.max(1, Math.ceil(Math.log2(vocabSize)));
}

function checkWire(wire: WireParams): void {
  check(wire.uplinkHeaderBytes >= 0 && wire.downlinkHeaderBytes >= 0, 'header sizes must be >= 0');
  check(wire.distributionBytes >= 0, 'distributionBytes must be >= 0');
  check(wire.idBits === undefined || (Number.isSafeInteger(wire.idBits) && wire.idBits >= 1), 'idBits >= 1');
}

/** DSSD uplink frame: header + γ+1 bit-packed ids (drafts and last round's resampled token) + γ float32 q's. */
export function dssdUplinkBytes(gamma: number, vocabSize: number, wire: WireParams): number {
  checkGamma(gamma);
  checkWire(wire);
  return wire.uplinkHeaderBytes + Math.ceil(((gamma + 1) * idBitsFor(vocabSize, wire)) / 8) + 4 * gamma;
}

/** DSSD downlink frame: header + encoded P_j on a rejection, header + one packed id (bonus) otherwise. */
export function dssdDownlinkBytes(rejected: boolean, vocabSize: number, wire: WireParams): number {
  checkWire(wire);
  return (
    wire.downlinkHeaderBytes + (rejected ? wire.distributionBytes : Math.ceil(idBitsFor(vocabSize, wire) / 8))
  );
}

/** DSD uplink frame: header + γ packed ids + γ encoded Q's. */
export function dsdUplinkBytes(gamma: number, vocabSize: number, wire: WireParams): number {
  checkGamma(gamma);
  checkWire(wire);
  return (
    wire.uplinkHeaderBytes +
    Math.ceil((gamma * idBitsFor(vocabSize, wire)) / 8) +
    gamma * wire.distributionBytes
  );
}

/** DSD downlink frame: header + one packed id (j rides in the header). */
export function dsdDownlinkBytes(vocabSize: number, wire: WireParams): number {
  checkWire(wire);
  return wire.downlinkHeaderBytes + Math.ceil(idBitsFor(vocabSize, wire) / 8);
}

/** Expected DSSD round time with real frame sizes: uplink always, downlink P_j w.p. 1 − α^γ, else a token. */
export function dssdRoundExactMs(params: ModelParams, gamma: number, wire: WireParams): number {
  checkLink(params);
  checkCompute(params);
  const reject = rejectionProbability(params.alpha, gamma);
  const { vocabSize: v } = params;
  const down = reject * dssdDownlinkBytes(true, v, wire) + (1 - reject) * dssdDownlinkBytes(false, v, wire);
  return (
    gamma * params.tSlmMs +
    params.tLlmMs +
    params.nttMs +
    transferMs(dssdUplinkBytes(gamma, v, wire) * 8, params.upRateBps) +
    transferMs(down * 8, params.downRateBps)
  );
}

/** DSD round time with real frame sizes (γ encoded Q's uplink, one token downlink). */
export function dsdRoundExactMs(params: ModelParams, gamma: number, wire: WireParams): number {
  checkLink(params);
  checkCompute(params);
  const v = params.vocabSize;
  return (
    gamma * params.tSlmMs +
    params.tLlmMs +
    params.nttMs +
    transferMs(dsdUplinkBytes(gamma, v, wire) * 8, params.upRateBps) +
    transferMs(dsdDownlinkBytes(v, wire) * 8, params.downRateBps)
  );
}

/**
 * Predicted round time and throughput of a method at γ: the paper's equations (7)/(13) without `wire`, the
 * exact frame-size variant with it. For 'ar', γ is ignored and a round is one token (with `wire`, one uplink
 * header and one downlink id per token).
 */
export function predict(method: Method, params: ModelParams, gamma: number, wire?: WireParams): Prediction {
  let roundMs: number;
  let tokensPerRound: number;
  if (method === 'ar') {
    tokensPerRound = 1;
    roundMs = wire
      ? arTokenMs(params, wire.uplinkHeaderBytes, dsdDownlinkBytes(params.vocabSize, wire))
      : arTokenMs(params);
  } else {
    tokensPerRound = expectedTokensPerRound(params.alpha, gamma);
    if (method === 'dssd') {
      roundMs = wire ? dssdRoundExactMs(params, gamma, wire) : dssdRoundMs(params.alpha, gamma, params);
    } else {
      roundMs = wire ? dsdRoundExactMs(params, gamma, wire) : dsdRoundMs(gamma, params);
    }
  }
  return { method, gamma, roundMs, tokensPerRound, tokensPerSecond: throughput(tokensPerRound, roundMs) };
}

/** γ in `candidates` maximising predicted throughput (ties: the smaller γ). Drives adaptive γ. */
export function bestGamma(
  params: ModelParams,
  candidates: readonly number[] = Array.from({ length: 16 }, (_, i) => i + 1),
  options: { method?: 'dsd' | 'dssd'; wire?: WireParams } = {},
): Prediction {
  check(candidates.length > 0, 'bestGamma needs at least one candidate');
  let best: Prediction | null = null;
  for (const gamma of candidates) {
    const p = predict(options.method ?? 'dssd', params, gamma, options.wire);
    if (
      best === null ||
      p.tokensPerSecond > best.tokensPerSecond ||
      (p.tokensPerSecond === best.tokensPerSecond && gamma < best.gamma)
    ) {
      best = p;
    }
  }
  return best as Prediction;
}

// --------------------------------------------------------------------------------------------------------------
// Pipelined drafting (no bonus; blocks of g drafts, at most `window` unverified tokens in flight)
// --------------------------------------------------------------------------------------------------------------

/** What the pipelined model needs; every cost can be measured in a serial run. */
export interface PipelineParams {
  /** Per-token acceptance probability α. */
  alpha: number;
  /** ms to draft one token (forward + processing, including any emulated padding). */
  draftMs: number;
  /** ms of one edge verify pass over `tokens` scored tokens. */
  passMs: (tokens: number) => number;
  /** Round-trip time plus per-block transfer, ms. */
  rttMs: number;
  /** Block size g and window W (unverified tokens; a multiple of g in practice). */
  block: number;
  window: number;
  /** Size of an epoch's first block (default: pipelineFirstBlock(block), what the device sends). */
  firstBlock?: number;
}

/**
 * Size of the first block of a pipelined epoch (at a turn's start and after every rejection): max(2, ⌈g/2⌉), at
 * most g. That block's verdict is on every epoch's critical path, so a shorter one starts the edge's pass sooner;
 * the blocks drafted while it is in flight keep size g, so the edge is not given more passes than it can run
 * (simulated with the default pair's measured acceptance, 7 and 15 ms drafts, RTT 20 and 50 ms, both target
 * presets: −1% to +2% at g = 3, +4–8% at g = 4, +9–17% at g = 6; a first block of 1 lost up to 4% at g = 2).
 */
export function pipelineFirstBlock(block: number): number {
  return Math.min(block, Math.max(2, Math.ceil(block / 2)));
}

/**
 * Expected tokens per second of pipelined DSSD: the time from a rejection to the next is a renewal epoch. The
 * device drafts continuously (a block waits until the window has room for all of it), the edge verifies blocks
 * one at a time, and an epoch ends when the verdict of the block holding the first rejected draft has arrived and
 * the device has finished the draft it was computing; it emits the accepted drafts plus the resampled token. Blocks hold f drafts (the first) then g. Accepted counts
 * are geometric in α (truncated at 1e-12 mass).
 */
export function pipelinedTokensPerSecond(p: PipelineParams): number {
  const { alpha, draftMs, rttMs, block: g, window: W } = p;
  const f = p.firstBlock ?? pipelineFirstBlock(g);
  if (!(alpha >= 0 && alpha < 1))
    throw new KernelError(KernelErrorCode.InvalidArgument, 'alpha must be in [0, 1)');
  if (!(Number.isInteger(g) && Number.isInteger(f) && f >= 1 && f <= g && W >= g))
    throw new KernelError(KernelErrorCode.InvalidArgument, 'need 1 <= firstBlock <= block <= window');
  const size = (i: number) => (i === 0 ? f : g);
  // Per block i, after an epoch starts (the rejection's verdict reached the device): drafts before it, when its
  // drafting began, when it was sent, when the edge finished it, when its verdict arrived.
  const before: number[] = [0];
  const begun: number[] = [];
  const sent: number[] = [];
  const verified: number[] = [];
  const arrived: number[] = [];
  const arrival = (k: number): number => {
    for (let i = arrived.length; i <= k; i++) {
      before[i + 1] = before[i] + size(i);
      // Block i may be drafted once the verdicts of blocks < m arrived, m the first with ≤ W tokens from m to i.
      let m = 0;
      while (before[i + 1] - before[m] > W) m++;
      begun[i] = Math.max(i > 0 ? sent[i - 1] : 0, m > 0 ? arrived[m - 1] : 0);
      sent[i] = begun[i] + size(i) * draftMs;
      verified[i] = Math.max(sent[i] + rttMs / 2, i > 0 ? verified[i - 1] : 0) + p.passMs(size(i));
      arrived[i] = verified[i] + rttMs / 2;
    }
    return arrived[k];
  };
  // The device acts on the rejection once the draft in progress is done (a forward cannot be interrupted): the
  // epoch ends then, or at the verdict's arrival if the window held the device idle.
  const epochEnd = (k: number): number => {
    const a = arrival(k);
    for (let i = k + 1; ; i++) {
      arrival(i);
      if (begun[i] >= a) return a;
      if (sent[i] > a) return begun[i] + Math.ceil((a - begun[i]) / draftMs) * draftMs;
    }
  };
  let tokens = 0;
  let duration = 0;
  let mass = 1;
  for (let n = 0; mass > 1e-12 && n < 1e6; n++) {
    const pn = alpha ** n * (1 - alpha); // n drafts accepted, draft n + 1 rejected
    tokens += pn * (n + 1);
    duration += pn * epochEnd(n < f ? 0 : 1 + Math.floor((n - f) / g));
    mass -= pn;
  }
  return (1000 * tokens) / duration;
}

/** Serial DSSD (bonus on full acceptance), the same costs: E[tokens]/(γ·t_draft + RTT + T_pass(γ + 1)). */
export function serialTokensPerSecond(p: Omit<PipelineParams, 'window'>): number {
  const g = p.block;
  return (1000 * expectedTokensPerRound(p.alpha, g)) / (g * p.draftMs + p.rttMs + p.passMs(g + 1));
}
