/**
 * Test tools (`@dssd/protocol/testing`): fault injection, a hash language model, frame forgery, planted bugs and
 * a seeded PRNG. For tests, drills (fidelity, fuzz, load) and benchmarks; production code never imports it.
 */
export { FaultyChannel, FAULT_KINDS, prng } from './faults.js';
export type { FaultKind, FaultPlan } from './faults.js';
export { HashLm, hashGreedy, hashIdentity } from './hash-lm.js';
export { FrameForge } from './forge.js';
export { PLANTED_BUGS, plantedRules } from './planted.js';
export type { PlantedBug } from './planted.js';
