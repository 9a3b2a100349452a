/**
 * Every failure the codec reports is a CodecError with one of these fixed codes, so callers (the protocol
 * layer, the fuzz test) can branch on `code` instead of parsing messages.
 */
export const CodecErrorCode = {
  /** The frame does not start with the 'DS' magic. */
  BadMagic: 'BadMagic',
  /** The frame's version byte is not one this codec speaks. */
  BadVersion: 'BadVersion',
  /** The CRC-32C over header and payload does not match. */
  BadCrc: 'BadCrc',
  /** Fewer bytes than the header or a length field promises. */
  Truncated: 'Truncated',
  /** A declared size exceeds a configured limit (checked before allocating). */
  TooLarge: 'TooLarge',
  /** Trailing bytes, or a length inconsistent with the counts it must hold. */
  BadLength: 'BadLength',
  /** A number (token id, γ, j, count) outside its allowed range. */
  OutOfRange: 'OutOfRange',
  /** A malformed value: non-finite/negative probability, bad UTF-8/JSON, non-zero padding, unknown flag. */
  BadValue: 'BadValue',
  /** Unknown frame type or distribution encoding tag. */
  UnknownType: 'UnknownType',
  /** The caller passed something the encoder cannot represent (a programming error, not hostile input). */
  BadArgument: 'BadArgument',
  /** A chunk whose header is malformed or disagrees with earlier chunks of the same message. */
  BadChunk: 'BadChunk',
  /** The same chunk index arrived twice for one message. */
  DuplicateChunk: 'DuplicateChunk',
  /** Too many partially received messages (Reassembler with overflow: 'error'). */
  TooManyPending: 'TooManyPending',
  /** A shared reassembly budget has no room for another partial message. */
  OverBudget: 'OverBudget',
} as const;
export type CodecErrorCode = (typeof CodecErrorCode)[keyof typeof CodecErrorCode];

export class CodecError extends Error {
  override readonly name = 'CodecError';
  readonly code: CodecErrorCode;
  constructor(code: CodecErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Shorthand used throughout the codec; `never` lets callers write `throw fail(...)` or use it in expressions. */
export function fail(code: CodecErrorCode, message: string): never {
  throw new CodecError(code, message);
}
