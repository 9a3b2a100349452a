/** Fixed error codes of @dssd/kernel; callers switch on `code`, never on the message text. */
export enum KernelErrorCode {
  /** Temperature/top-k/top-p out of range or not finite. */
  InvalidSamplingParams = 'INVALID_SAMPLING_PARAMS',
  /** Logits contain NaN or +Infinity, are empty, or mask every token. */
  InvalidLogits = 'INVALID_LOGITS',
  /** A weight vector or distribution has a negative, NaN or infinite entry. */
  InvalidDistribution = 'INVALID_DISTRIBUTION',
  /** A weight vector sums to zero, so nothing can be sampled. */
  EmptyDistribution = 'EMPTY_DISTRIBUTION',
  /** A scalar probability (q, p, candidate prob) is outside its allowed range. */
  InvalidProbability = 'INVALID_PROBABILITY',
  /** A uniform draw is not a finite number in [0, 1). */
  InvalidUniform = 'INVALID_UNIFORM',
  /** Two inputs that must have the same length do not. */
  LengthMismatch = 'LENGTH_MISMATCH',
  /** A token id is not an integer in [0, |V|). */
  TokenOutOfRange = 'TOKEN_OUT_OF_RANGE',
  /** Seed or RNG counter word outside its allowed range. */
  InvalidRngInput = 'INVALID_RNG_INPUT',
  /** Any other argument outside its documented domain. */
  InvalidArgument = 'INVALID_ARGUMENT',
}

/** The only error type thrown by @dssd/kernel. */
export class KernelError extends Error {
  override readonly name = 'KernelError';
  readonly code: KernelErrorCode;

  constructor(code: KernelErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}
