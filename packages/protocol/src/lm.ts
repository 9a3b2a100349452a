/**
 * What the protocol needs from a language model: a session with its own KV cache. @dssd/models' ModelSession
 * satisfies it; tests may use any deterministic implementation.
 */
export interface LmSession {
  /** Tokens held in the KV cache. */
  readonly length: number;
  /** Appends tokens to the cache in one forward pass; one logits row (|V| entries) per new token. */
  forward(tokens: number[]): Promise<Float32Array[]>;
  /** Drops the cache beyond `length` tokens. */
  truncate(length: number): void;
}
