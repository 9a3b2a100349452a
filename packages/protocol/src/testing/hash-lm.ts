/** A tiny deterministic language model for protocol tests and drills (no ONNX, any |V|). */
import { processLogits, sampleFrom } from '@dssd/kernel';
import type { LmSession } from '../lm.js';
import type { ModelIdentity } from '../settings.js';

/** A tiny deterministic model: logits from a hash of the last two tokens (cheap, cache-sensitive). */
export class HashLm implements LmSession {
  readonly tokens: number[] = [];
  constructor(
    readonly V: number,
    readonly seed = 1,
  ) {}
  get length(): number {
    return this.tokens.length;
  }
  async forward(toks: number[]): Promise<Float32Array[]> {
    if (toks.length === 0) throw new Error('empty forward');
    return toks.map((t) => {
      this.tokens.push(t);
      return this.logits(this.tokens);
    });
  }
  truncate(n: number): void {
    if (n < 0 || n > this.tokens.length) throw new Error(`truncate ${n} of ${this.tokens.length}`);
    this.tokens.length = n;
  }
  logits(prefix: number[]): Float32Array {
    const a = prefix[prefix.length - 1] ?? 0;
    const b = prefix[prefix.length - 2] ?? 0;
    const out = new Float32Array(this.V);
    for (let v = 0; v < this.V; v++) {
      let h = Math.imul(a * 31 + b * 17 + v * 7 + this.seed, 0x9e3779b1) >>> 0;
      h ^= h >>> 15;
      out[v] = ((Math.imul(h, 0x85ebca6b) >>> 0) % 1000) / 250;
    }
    return out;
  }
}

export function hashIdentity(V: number): ModelIdentity {
  return { tokenizerHash: 'f0'.repeat(16), vocabSize: V, maxContext: 256, eosTokenId: -1, name: 'hash' };
}

/** Greedy reference for HashLm. */
export function hashGreedy(V: number, prompt: number[], n: number): number[] {
  const lm = new HashLm(V);
  const p = [...prompt];
  const out: number[] = [];
  const g = { temperature: 0, topK: 0, topP: 1 };
  for (let i = 0; i < n; i++) {
    const t = sampleFrom(processLogits(lm.logits(p), g), 0.5);
    out.push(t);
    p.push(t);
  }
  return out;
}
