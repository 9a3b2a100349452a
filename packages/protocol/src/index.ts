export { ProtocolError, ProtocolErrorCode, WIRE_CODES, codeFromWire } from './errors.js';
export type { LmSession } from './lm.js';
export {
  DEFAULT_SETTINGS,
  DOWNLINK_CODECS,
  LOSSY_CODECS,
  MODES,
  PROTOCOL_VERSION,
  validateHello,
  validateIdentity,
  validateSettings,
  validateWelcome,
} from './settings.js';
export type {
  DownlinkCodec,
  HelloBody,
  Mode,
  ModelIdentity,
  SessionSettings,
  WelcomeBody,
} from './settings.js';
export { FrameTransport, memoryChannelPair } from './transport.js';
export type { FrameTransportOptions, RawChannel, TransportCounters } from './transport.js';
export { EdgeSession, DEFAULT_EDGE_LIMITS, SessionTable, historyDigest } from './edge.js';
export type {
  EdgeLimits,
  EdgeSessionMetrics,
  EdgeSessionOptions,
  HeldSession,
  ResumeLookup,
} from './edge.js';
export { FaultyChannel, FAULT_KINDS, prng } from './faults.js';
export type { FaultKind, FaultPlan } from './faults.js';
export { DeviceSession, completeSettings, emptyTurnStats } from './device.js';
export type {
  DeviceOptions,
  GenerateOptions,
  TokenEvent,
  TokenOrigin,
  TurnResult,
  TurnStats,
} from './device.js';
export { GammaController } from './adaptive.js';
export type { RoundObservation } from './adaptive.js';
export {
  connectEdge,
  errorCodeFrom,
  peerChannel,
  signalingUrl,
  validateSignalData,
  DEFAULT_CONNECT_TIMEOUT_MS,
  MAX_BUFFERED_BYTES,
  MAX_SIGNAL_MESSAGE_BYTES,
  MAX_SIGNAL_MESSAGES,
} from './webrtc.js';
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
} from './webrtc.js';
