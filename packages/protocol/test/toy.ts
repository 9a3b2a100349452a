/** Deterministic toy language models and an in-memory device/edge pair for protocol tests. */
import { EdgeSession, DeviceSession, FrameTransport, memoryChannelPair } from '../src/index.js';
import type { DeviceOptions, LmSession, ModelIdentity } from '../src/index.js';

function hash(xs: number[], seed: number): number {
  let h = (seed ^ 0x9e3779b9) >>> 0;
  for (const x of xs) {
    h = Math.imul(h ^ (x + 0x7f4a7c15), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/**
 * Logits depend on the last `order` tokens and the position parity only, so a wrong cache (a token fed twice,
 * or one missing) changes the output. The draft is the target plus bounded noise.
 */
export class ToyLm implements LmSession {
  readonly tokens: number[] = [];
  forwards = 0;
  constructor(
    readonly V: number,
    readonly seed: number,
    readonly noise = 0,
    readonly noiseSeed = 99,
    readonly maxContext = 1 << 20,
  ) {}
  get length(): number {
    return this.tokens.length;
  }
  async forward(toks: number[]): Promise<Float32Array[]> {
    if (toks.length === 0) throw new Error('empty forward');
    if (this.tokens.length + toks.length > this.maxContext) throw new Error('context overflow');
    this.forwards++;
    const rows: Float32Array[] = [];
    for (const t of toks) {
      this.tokens.push(t);
      rows.push(this.logits(this.tokens));
    }
    return rows;
  }
  truncate(n: number): void {
    if (n > this.tokens.length || n < 0) throw new Error(`truncate ${n} of ${this.tokens.length}`);
    this.tokens.length = n;
  }
  logits(prefix: number[]): Float32Array {
    const ctx = prefix.slice(-2).concat([prefix.length & 1]);
    const out = new Float32Array(this.V);
    for (let v = 0; v < this.V; v++) {
      out[v] = ((hash([...ctx, v], this.seed) % 1000) / 1000) * 3;
      if (this.noise) out[v] += ((hash([...ctx, v], this.noiseSeed) % 1000) / 1000 - 0.5) * this.noise;
    }
    return out;
  }
}

export const toyIdentity = (V: number, maxContext = 4096, hashHex = 'ab'.repeat(16)): ModelIdentity => ({
  tokenizerHash: hashHex,
  vocabSize: V,
  maxContext,
  eosTokenId: -1,
  name: 'toy',
});

export interface ToyPair {
  device: DeviceSession;
  edge: EdgeSession;
  target: ToyLm;
  draft: ToyLm;
  edgeTransport: FrameTransport;
  deviceTransport: FrameTransport;
}

export async function toyPair(
  settings: DeviceOptions['settings'],
  o: {
    V?: number;
    noise?: number;
    maxContext?: number;
    eos?: number;
    /** The edge model's stop tokens (stopTokenIds), besides `eos`. */
    stops?: number[];
    deviceModel?: Partial<ModelIdentity>;
    adaptiveGamma?: boolean;
    maxMessageSize?: number;
  } = {},
): Promise<ToyPair> {
  const V = o.V ?? 12;
  const [a, b] = memoryChannelPair({ maxMessageSize: o.maxMessageSize });
  const deviceTransport = new FrameTransport(a);
  const edgeTransport = new FrameTransport(b);
  const target = new ToyLm(V, 1, 0, 99, o.maxContext ?? 1 << 20);
  const draft = new ToyLm(V, 1, o.noise ?? 1.5, 7, o.maxContext ?? 1 << 20);
  const edgeModel: ModelIdentity = {
    ...toyIdentity(V, o.maxContext),
    eosTokenId: o.eos ?? -1,
    ...(o.stops ? { stopTokenIds: o.stops } : {}),
  };
  const edge = new EdgeSession({
    sessionId: 7,
    model: edgeModel,
    createTarget: () => target,
    secretSeed: 12345,
    send: (f) => edgeTransport.send(f),
  });
  edgeTransport.onFrame((f) => void edge.handle(f));
  const device = await DeviceSession.open({
    transport: deviceTransport,
    model: { ...edgeModel, ...o.deviceModel },
    drafter: draft,
    settings,
    adaptiveGamma: o.adaptiveGamma,
    secretSeed: 777,
    timeoutMs: 5000,
  });
  return { device, edge, target, draft, edgeTransport, deviceTransport };
}
