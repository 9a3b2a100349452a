export { EdgeNode, DEFAULT_DRAFT_DIR, DEFAULT_TARGET_DIR, DEFAULT_WEB_ROOT, REPO_ROOT } from './server.js';
export type { EdgeNodeOptions } from './server.js';
export { connectNodeDevice } from './device.js';
export type { NodeDevice, NodeDeviceOptions } from './device.js';
export { fidelityTest, ksPValue, ksUniform, chiSquarePValue, gammaQ } from './fidelity.js';
export { runFidelity, main, parseIceServers } from './cli.js';
export { Logger } from './log.js';
export { EdgeMetrics } from './metrics.js';
export { loadPrompts } from './load.js';
