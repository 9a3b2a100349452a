/** Protocol errors: a string enum for code, a fixed numeric wire code for error frames. */
export enum ProtocolErrorCode {
  BadFrame = 'BadFrame',
  BadSettings = 'BadSettings',
  TokenizerMismatch = 'TokenizerMismatch',
  PromptTooLong = 'PromptTooLong',
  ContextFull = 'ContextFull',
  UnexpectedFrame = 'UnexpectedFrame',
  TooManySessions = 'TooManySessions',
  ModeNotAllowed = 'ModeNotAllowed',
  Closed = 'Closed',
  Timeout = 'Timeout',
  RateLimited = 'RateLimited',
  Unauthorized = 'Unauthorized',
  Internal = 'Internal',
  Aborted = 'Aborted',
}

/** u16 codes carried in error frames; values never change once released. */
export const WIRE_CODES: Readonly<Record<ProtocolErrorCode, number>> = {
  BadFrame: 1,
  BadSettings: 2,
  TokenizerMismatch: 3,
  PromptTooLong: 4,
  ContextFull: 5,
  UnexpectedFrame: 6,
  TooManySessions: 7,
  ModeNotAllowed: 8,
  Closed: 9,
  Timeout: 10,
  RateLimited: 11,
  Unauthorized: 12,
  Internal: 13,
  Aborted: 14,
};

/** Why a connection is Closed, where callers word it differently: never reached, or lost and not regained. */
export type ClosedReason = 'unreachable' | 'reconnectFailed';

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  /** True when the error came from the peer in an error frame. */
  readonly remote: boolean;
  readonly reason: ClosedReason | undefined;
  constructor(
    readonly code: ProtocolErrorCode,
    message: string,
    opts: { remote?: boolean; cause?: unknown; reason?: ClosedReason } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.remote = opts.remote ?? false;
    this.reason = opts.reason;
  }
}

export function codeFromWire(n: number): ProtocolErrorCode {
  for (const [k, v] of Object.entries(WIRE_CODES)) if (v === n) return k as ProtocolErrorCode;
  return ProtocolErrorCode.Internal;
}
