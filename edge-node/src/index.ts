export { EdgeNode, EdgeStartError, DEFAULT_WEB_ROOT } from './server.js';
export type { EdgeNodeOptions } from './server.js';
export { connectNodeDevice, nodeWrtc } from './device/node.js';
export type { NodeDevice, NodeDeviceOptions } from './device/node.js';
export { HELP, main } from './cli.js';
export { parseIceServers } from './flags.js';
export { Logger } from './log.js';
export { EdgeMetrics } from './metrics.js';
