export { ProtocolError, ProtocolErrorCode, WIRE_CODES, codeFromWire } from './errors.js';
export type { ClosedReason } from './errors.js';
export type { LmSession } from './lm.js';
export {
  CANDIDATES,
  CODECS,
  DEFAULT_EDGE_LIMITS,
  DEFAULT_SETTINGS,
  DEFAULT_USER_SETTINGS,
  DEVICE_TIMEOUTS,
  DOWNLINK_CODECS,
  DSD_PRECISIONS,
  EDGE_NODE_DEFAULTS,
  SCORE_LIMITS,
  maxUplinkFrameBytes,
  GAMMA,
  LOSSY_CODECS,
  MODES,
  PAGE_DEFAULT_SETTINGS,
  PAGE_SETTING_KEYS,
  PIPELINE,
  PROTOCOL_VERSION,
  SETTING_SPEC,
  SETTING_SPECS,
  TARGET_COST_PRESETS,
  BATCH_COST_PRESETS,
  BATCH_DEFAULTS,
  batchCostMs,
  parseBatchCost,
  TOPK_CODEC,
  WEBRTC_STACKS,
  completeSettings,
  parseWebrtcStack,
  gammaFor,
  identityOf,
  stopTokens,
  parseSettings,
  parseTargetCost,
  settingsHelp,
  settingsToQuery,
  toSessionSettings,
  validateHello,
  validateIdentity,
  validateSettings,
  validateWelcome,
} from './settings.js';
export type {
  DownlinkCodec,
  DsdPrecision,
  EdgeLimits,
  HelloBody,
  Mode,
  ModelIdentity,
  PartialSettings,
  SessionSettings,
  SettingIssue,
  SettingKey,
  SettingNames,
  SettingSource,
  SettingSpec,
  TargetCost,
  BatchCostTable,
  UserSettings,
  WebrtcStack,
  WelcomeBody,
} from './settings.js';
export { FrameTransport, memoryChannelPair } from './wire/transport.js';
export type { FrameTransportOptions, RawChannel, TransportCounters } from './wire/transport.js';
export {
  connectEdge,
  errorCodeFrom,
  parseSessionQuery,
  peerChannel,
  signalingUrl,
  SESSION_QUERY,
  validateSignalData,
  MAX_BUFFERED_BYTES,
  MAX_SIGNAL_MESSAGE_BYTES,
  MAX_SIGNAL_MESSAGES,
} from './wire/webrtc.js';
export type {
  ConnectEdgeOptions,
  EdgeConnection,
  PeerConstructor,
  PeerLike,
  PeerOptions,
  SignalData,
  SignalingSocket,
  SignalingSocketConstructor,
  SignalMessage,
  WrtcLike,
} from './wire/webrtc.js';
export { historyDigest } from './wire/resume.js';
export type { ResumeAnswer, ResumeClaim } from './wire/resume.js';
export { EdgeSession } from './edge/session.js';
export { BatchScheduler } from './edge/batch.js';
export type { BatchBackend, BatchSchedulerOptions, BatchStats } from './edge/batch.js';
export type { EdgeSessionMetrics, EdgeSessionOptions, HeldSession, ResumeLookup } from './edge/session.js';
export { SessionTable } from './edge/table.js';
export { DeviceSession } from './device/session.js';
export { emptyTurnStats } from './device/turn.js';
export { edgeChannel, openDevice } from './device/open.js';
export type { OpenDeviceOptions } from './device/open.js';
export type {
  DeviceOptions,
  GenerateOptions,
  TokenEvent,
  TokenOrigin,
  TurnResult,
  TurnStats,
} from './device/types.js';
export { GammaController } from './device/adaptive.js';
export type { RoundObservation } from './device/adaptive.js';
