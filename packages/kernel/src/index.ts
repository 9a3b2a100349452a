export { KernelError, KernelErrorCode } from './errors.js';
export {
  PROB_UNIT,
  PROB_UNITS,
  argmax,
  assertUniform,
  expNonPositive,
  isGridDistribution,
  processLogits,
  quantizeWeights,
  sampleFrom,
  validateSamplingParams,
} from './sampling.js';
export type { ProcessOptions, SamplingParams } from './sampling.js';
export { Purpose, RoundRng, SessionRng, philox4x32, uniform, validateSeed } from './rng.js';
export {
  acceptanceProbability,
  candidateAcceptanceProbability,
  candidateFallbackProbability,
  candidateSuccessProbability,
  chooseCandidateCount,
  drawCandidates,
  residualLaw,
  residualWeights,
  resolveCandidates,
  sampleBonus,
  sampleResidual,
  scanAcceptance,
  totalVariation,
} from './verify.js';
export type { CandidateDraws, CandidateResolution, ScanResult } from './verify.js';
export {
  EXACT_RULES,
  drawRejectionCandidates,
  resampleRejected,
  resolveRejectionCandidates,
  verifyDsd,
  verifyDsdRound,
  verifyDssd,
  verifyDssdRound,
} from './round.js';
export type { DsdRoundInput, DsdVerdict, DssdRoundInput, DssdVerdict, RoundRules, Rows } from './round.js';
export { SpecStats } from './stats.js';
export type { RoundOutcome, SpecStatsJSON } from './stats.js';
export {
  arTokenMs,
  bestGamma,
  dsdCommMs,
  dsdDownlinkBytes,
  dsdRoundExactMs,
  dsdRoundMs,
  dsdUplinkBits,
  dsdUplinkBytes,
  dssdDownlinkBytes,
  dssdExpectedCommMs,
  dssdRoundExactMs,
  dssdRoundMs,
  dssdUplinkBytes,
  expectedTokensPerRound,
  notebookSpeedup,
  pipelineFirstBlock,
  pipelinedTokensPerSecond,
  predict,
  rejectionProbability,
  serialTokensPerSecond,
  throughput,
  transferMs,
} from './latency.js';
export type {
  ComputeParams,
  LinkParams,
  Method,
  ModelParams,
  PipelineParams,
  Prediction,
  WireParams,
} from './latency.js';
export { PipelineVerifier } from './pipeline.js';
export type { PipelineBlock, PipelineResult } from './pipeline.js';
export { CandidateCountChooser, candidatesBodyBytes } from './candidates.js';
export type { CandidateChooserOptions, RejectionPlan } from './candidates.js';
