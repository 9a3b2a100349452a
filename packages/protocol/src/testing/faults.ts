/**
 * A fault-injecting RawChannel for tests and drills: wraps a channel and, on the messages this end sends, drops,
 * delays, duplicates, reorders, truncates or corrupts them, or closes the channel after a number of messages
 * (mid-round). Seeded, so a failing case replays exactly. Wrap both ends to disturb both directions.
 */
import type { RawChannel } from '../wire/transport.js';

export type FaultKind = 'drop' | 'delay' | 'duplicate' | 'reorder' | 'truncate' | 'corrupt' | 'close';
export const FAULT_KINDS: readonly FaultKind[] = [
  'drop',
  'delay',
  'duplicate',
  'reorder',
  'truncate',
  'corrupt',
  'close',
];

export interface FaultPlan {
  seed: number;
  /** Probability per sent message of each fault (close: per message, once). */
  drop?: number;
  delay?: number;
  duplicate?: number;
  reorder?: number;
  truncate?: number;
  corrupt?: number;
  close?: number;
  /** Largest added delay (default 30 ms). */
  maxDelayMs?: number;
  /** Messages passed untouched first (e.g. to let the handshake through). */
  skip?: number;
}

/** mulberry32: tiny, seedable, good enough to choose faults, fuzz inputs and bootstrap resamples. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultyChannel implements RawChannel {
  /** Faults injected so far, by kind. */
  readonly injected: Record<FaultKind, number> = {
    drop: 0,
    delay: 0,
    duplicate: 0,
    reorder: 0,
    truncate: 0,
    corrupt: 0,
    close: 0,
  };
  private readonly rand: () => number;
  private held: Uint8Array | null = null;
  private sent = 0;
  private closed = false;

  constructor(
    readonly inner: RawChannel,
    readonly plan: FaultPlan,
  ) {
    this.rand = prng(plan.seed);
    inner.onClose(() => (this.closed = true));
  }

  get total(): number {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }

  private pass(m: Uint8Array): void {
    if (this.closed) return;
    try {
      this.inner.send(m);
    } catch {
      // closed meanwhile: a lost message, like a real channel
    }
  }

  send(message: Uint8Array): void {
    if (this.closed) throw new Error('channel closed');
    const p = this.plan;
    const hit = (x: number | undefined) => x !== undefined && x > 0 && this.rand() < x;
    const held = this.held;
    this.held = null;
    const flushHeld = () => {
      if (held) this.pass(held); // the reordered message goes after this one
    };
    if (this.sent++ < (p.skip ?? 0)) {
      this.pass(message);
      flushHeld();
      return;
    }
    if (hit(p.close)) {
      this.injected.close++;
      this.close();
      return;
    }
    if (hit(p.drop)) {
      this.injected.drop++;
      flushHeld();
      return;
    }
    let m = message;
    if (hit(p.truncate) && m.length > 1) {
      this.injected.truncate++;
      m = m.slice(0, Math.floor(this.rand() * m.length));
    }
    if (hit(p.corrupt) && m.length > 0) {
      this.injected.corrupt++;
      m = m.slice();
      const n = 1 + Math.floor(this.rand() * 3);
      for (let k = 0; k < n; k++) m[Math.floor(this.rand() * m.length)] ^= 1 + Math.floor(this.rand() * 255);
    }
    if (hit(p.reorder) && !held) {
      this.injected.reorder++;
      this.held = m;
      // Nothing may follow: release it soon so a lone message is late, not lost.
      setTimeout(() => {
        if (this.held === m) {
          this.held = null;
          this.pass(m);
        }
      }, 5);
      return;
    }
    if (hit(p.delay)) {
      this.injected.delay++;
      const copy = m;
      setTimeout(() => this.pass(copy), 1 + this.rand() * (p.maxDelayMs ?? 30));
    } else {
      this.pass(m);
    }
    flushHeld();
    if (hit(p.duplicate)) {
      this.injected.duplicate++;
      this.pass(m);
    }
  }

  bufferedAmount(): number {
    return this.inner.bufferedAmount();
  }
  maxMessageSize(): number | undefined {
    return this.inner.maxMessageSize();
  }
  onMessage(cb: (message: Uint8Array) => void): void {
    this.inner.onMessage(cb);
  }
  onClose(cb: (err?: Error) => void): void {
    this.inner.onClose(cb);
  }
  close(): void {
    this.closed = true;
    this.inner.close();
  }
}
