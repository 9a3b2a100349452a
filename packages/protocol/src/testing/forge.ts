/** Valid frames of every kind, to mutate (fuzzing) or to send out of turn (tests). */
import { encodeFrame, frameCrc, type Frame } from '@dssd/codec';
import { DOWNLINK_CODECS, MODES, PROTOCOL_VERSION } from '../settings.js';
import { hashIdentity } from './hash-lm.js';

/** Builds valid frames of every kind for a session (ids < V, q in (0, 1]) to mutate. */
export class FrameForge {
  constructor(
    readonly V: number,
    readonly rand: () => number,
  ) {}
  private int(n: number): number {
    return Math.floor(this.rand() * n);
  }
  private ids(n: number): number[] {
    return Array.from({ length: n }, () => this.int(this.V));
  }
  hello(): Frame {
    const mode = MODES[this.int(MODES.length)];
    return {
      kind: 'hello',
      body: {
        protocol: PROTOCOL_VERSION,
        model: hashIdentity(this.V),
        settings: {
          mode,
          codec: DOWNLINK_CODECS[this.int(DOWNLINK_CODECS.length)],
          gamma: mode === 'ar' ? 0 : 1 + this.int(6),
          sampling: { temperature: this.rand() < 0.5 ? 0 : 1, topK: 0, topP: 1 },
          dsdPrecision: 'f32',
          topK: 8,
          candidates: 'auto',
          ...(this.rand() < 0.5 ? { seed: this.int(1000) } : {}),
        },
      },
    };
  }
  frame(): Frame {
    const g = 1 + this.int(5);
    switch (this.int(9)) {
      case 0:
        return this.hello();
      case 1:
      case 2:
        return {
          kind: 'turn',
          base: this.int(4),
          ids: this.ids(1 + this.int(8)),
          maxNewTokens: 1 + this.int(40),
        };
      case 3:
      case 4: {
        const q = Array.from({ length: g }, () => Math.max(1e-6, this.rand()));
        return {
          kind: 'draft',
          ids: this.ids(g),
          q,
          ...(this.rand() < 0.4 ? { prevToken: this.int(this.V) } : {}),
        };
      }
      case 5: {
        const dists = Array.from({ length: g }, () => {
          const d = new Float32Array(this.V).map(() => this.rand());
          const s = d.reduce((a, b) => a + b, 0);
          return d.map((x) => x / s);
        });
        return { kind: 'dsdDraft', ids: this.ids(g), dists, encoding: 'f32' };
      }
      case 6:
        return { kind: 'fullRequest', j: 1 + this.int(g) };
      case 7:
        return { kind: 'stop' };
      default:
        return { kind: 'ping', t: this.rand() * 1e6 };
    }
  }
  /** One mutated frame for `sessionId` near `round`. */
  mutated(sessionId: number, round: number): Uint8Array {
    const f = this.frame();
    let b = encodeFrame(f, { sessionId, round: Math.max(0, round + this.int(3) - 1), vocabSize: this.V });
    const r = this.rand();
    if (r < 0.15) return b; // valid frames in odd orders drive the session state machine
    b = b.slice();
    const ops = 1 + this.int(4);
    for (let k = 0; k < ops; k++) {
      const op = this.int(8);
      if (op <= 2 && b.length > 0) b[this.int(b.length)] ^= 1 << this.int(8);
      else if (op === 3 && b.length > 0) b[this.int(b.length)] = [0, 0xff, 0x7f, 0x80][this.int(4)];
      else if (op === 4) b = b.slice(0, this.int(b.length + 1));
      else if (op === 5) {
        const extra = new Uint8Array(1 + this.int(64)).map(() => this.int(256));
        const c = new Uint8Array(b.length + extra.length);
        c.set(b);
        c.set(extra, b.length);
        b = c;
      } else if (op === 6 && b.length >= 20) {
        // header fields: type, session, round, payload length
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const which = this.int(4);
        if (which === 0) b[3] = this.int(20);
        else if (which === 1) dv.setUint32(4, this.rand() < 0.5 ? sessionId + 1 : 0, true);
        else if (which === 2) dv.setUint32(8, this.int(0xffffffff), true);
        else dv.setUint32(12, [0, 0xffffffff, b.length, b.length - 21][this.int(4)] >>> 0, true);
      } else if (op === 7) {
        // splice the tail of another frame
        const o = encodeFrame(this.frame(), { sessionId, round, vocabSize: this.V });
        const cut = this.int(Math.min(b.length, o.length) + 1);
        const c = new Uint8Array(cut + o.length - Math.min(cut, o.length));
        c.set(b.subarray(0, cut));
        c.set(o.subarray(Math.min(cut, o.length)), cut);
        b = c;
      }
    }
    // Fix the CRC most of the time so the payload and session checks are exercised, not just the checksum.
    if (b.length >= 20 && this.rand() < 0.7) {
      new DataView(b.buffer, b.byteOffset, b.byteLength).setUint32(16, frameCrc(b), true);
    }
    return b;
  }
}
