/**
 * Faults over real sessions: a fault-injecting channel on both directions (drop, delay, duplicate, reorder,
 * truncate, corrupt, close mid-round) between a device and an in-memory edge host that holds lost sessions for
 * resumption. Every case must end in the exact greedy answer or a clear ProtocolError whose committed tokens are
 * a prefix of it: never a hang, never a wrong token.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { processLogits, sampleFrom } from '@dssd/kernel';
import {
  DeviceSession,
  EdgeSession,
  FrameTransport,
  ProtocolError,
  ProtocolErrorCode,
  SessionTable,
  PROTOCOL_VERSION,
  memoryChannelPair,
  type DeviceOptions,
} from '../src/index.js';
import { FAULT_KINDS, FaultyChannel, type FaultKind, type FaultPlan } from '../src/testing/index.js';
import { ToyLm, toyIdentity } from './toy.js';

const V = 12;
const greedy = { temperature: 0, topK: 0, topP: 1 };

function argmaxDecode(prompt: number[], n: number): number[] {
  const lm = new ToyLm(V, 1);
  const out: number[] = [];
  const prefix = [...prompt];
  for (let i = 0; i < n; i++) {
    const t = sampleFrom(processLogits(lm.logits(prefix), greedy), 0.5);
    out.push(t);
    prefix.push(t);
  }
  return out;
}

/** An edge host like the edge node's: sessions by id, lost ones held for `holdMs`, faults on every channel. */
class ToyHost {
  table: SessionTable;
  readonly channels: FaultyChannel[] = [];
  private nextId = 1;
  up = true;
  constructor(
    holdMs: number,
    private readonly plan: (attempt: number) => FaultPlan | null,
  ) {
    this.table = new SessionTable(holdMs, () => undefined);
  }
  get injected(): number {
    return this.channels.reduce((n, c) => n + c.total, 0);
  }
  connect(): FrameTransport {
    if (!this.up) throw new Error('the edge is down');
    const [a, b] = memoryChannelPair();
    const plan = this.plan(this.channels.length / 2);
    const da = plan ? new FaultyChannel(a, plan) : a;
    const eb = plan ? new FaultyChannel(b, { ...plan, seed: plan.seed ^ 0x5bd1e995 }) : b;
    if (plan) this.channels.push(da as FaultyChannel, eb as FaultyChannel);
    const device = new FrameTransport(da);
    const edgeT = new FrameTransport(eb);
    const edge = new EdgeSession({
      sessionId: this.nextId++,
      model: toyIdentity(V),
      createTarget: () => new ToyLm(V, 1),
      secretSeed: 5,
      send: (f) => edgeT.send(f),
      resume: (id, secret) => this.table.claim(id, secret),
    });
    this.table.add(edge, () => edgeT.close());
    edgeT.onFrame((f) => void edge.handle(f));
    edgeT.onClose(() => this.table.lost(edge));
    return device;
  }
}

async function device(
  host: ToyHost,
  settings: DeviceOptions['settings'],
  extra: Partial<DeviceOptions> = {},
) {
  return DeviceSession.open({
    transport: host.connect(),
    model: toyIdentity(V),
    drafter: new ToyLm(V, 1, 1.5, 7),
    settings: { ...settings, sampling: greedy },
    secretSeed: 3,
    timeoutMs: 200,
    reconnect: async () => host.connect(),
    recovery: { maxAttempts: 40, backoffMs: 5 },
    ...extra,
  });
}

const RATES: Record<FaultKind, Partial<FaultPlan>> = {
  drop: { drop: 0.08 },
  delay: { delay: 0.3, maxDelayMs: 40 },
  duplicate: { duplicate: 0.2 },
  reorder: { reorder: 0.2 },
  truncate: { truncate: 0.08 },
  corrupt: { corrupt: 0.08 },
  close: { close: 0.04 },
};

const MODES: DeviceOptions['settings'][] = [
  { mode: 'dssd', codec: 'candidates', gamma: 4 },
  { mode: 'dssd', codec: 'f32', gamma: 3 },
  { mode: 'dssd', codec: 'candidates', gamma: 2, pipeline: true },
  { mode: 'dsd', gamma: 3 },
  { mode: 'ar' },
];

test('faults: every kind, both directions, every mode: the exact answer or a clear error, never a wrong token', async () => {
  let injected = 0;
  let cases = 0;
  let correct = 0;
  const errors: string[] = [];
  const prompt = [1, 2, 3];
  const n = 48;
  const ref = argmaxDecode(prompt, n);
  for (const kind of FAULT_KINDS) {
    for (const settings of MODES) {
      for (const seed of [1, 2]) {
        cases++;
        // The handshake passes untouched; faults start with the turn.
        const host = new ToyHost(10_000, (k) => ({
          seed: seed * 7919 + k * 31 + kind.length,
          skip: 1,
          ...RATES[kind],
        }));
        const dev = await device(host, settings);
        let r;
        try {
          r = await dev.generate(prompt, { maxNewTokens: n });
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `${kind}/${settings.mode}: ${(e as Error).message}`);
          errors.push(`${kind}/${settings.mode}${settings.pipeline ? '+pipeline' : ''}/${seed}: ${e.code}`);
        }
        injected += host.injected;
        // Committed tokens are always a prefix of the right answer.
        const got = dev.history.slice(prompt.length);
        assert.deepEqual(got, ref.slice(0, got.length), `${kind}/${settings.mode}/${seed}`);
        if (r) {
          assert.deepEqual(r.tokens, ref, `${kind}/${settings.mode}/${seed}`);
          correct++;
        }
        dev.close();
        host.table.clear();
      }
    }
  }
  console.log(
    `faults: ${injected} injected over ${cases} sessions; ${correct} exact answers, ${errors.length} clear errors` +
      (errors.length ? ` (${errors.join(', ')})` : ''),
  );
  assert.ok(injected > 500, `only ${injected} faults injected`);
  // With recovery on, nearly every session survives its faults.
  assert.ok(correct >= cases - 2, `${cases - correct} sessions ended in errors: ${errors.join(', ')}`);
});

test('without recovery a fault ends the turn with a clear error (no hang, no wrong token)', async () => {
  const host = new ToyHost(0, () => ({ seed: 4, skip: 3, drop: 1 }));
  const dev = await device(host, { mode: 'dssd', gamma: 3 }, { recovery: undefined, reconnect: undefined });
  await assert.rejects(
    dev.generate([1, 2], { maxNewTokens: 20 }),
    (e: ProtocolError) => e.code === 'Timeout',
  );
  dev.close();
});

test('resume: a dropped connection mid-answer resumes with the KV kept; the greedy answer is unchanged', async () => {
  const ref = argmaxDecode([4, 5], 60);
  for (const mode of ['dssd', 'dsd', 'ar'] as const) {
    const host = new ToyHost(10_000, () => null);
    const dev = await device(host, { mode, gamma: 4 });
    let closed = 0;
    const r = await dev.generate([4, 5], {
      maxNewTokens: 60,
      onTokens: () => {
        if (dev.history.length > 20 && closed++ === 0) dev.transport.channel.close(); // the channel drops
      },
    });
    assert.deepEqual(r.tokens, ref, mode);
    assert.equal(r.stats.recoveries, 1);
    assert.deepEqual(dev.resumes, { kept: 1, rebuilt: 0 }, mode);
    // A second turn on the resumed session continues the same conversation.
    const r2 = await dev.generate([3], { maxNewTokens: 10 });
    assert.deepEqual(r2.tokens, argmaxDecode([4, 5, ...ref, 3], 10));
    dev.close();
  }
});

test('edge restart: the device rejoins and rebuilds the session from its committed tokens', async () => {
  const ref = argmaxDecode([7], 50);
  const host = new ToyHost(10_000, () => null);
  const dev = await device(host, { mode: 'dssd', codec: 'candidates', gamma: 4 });
  let restarted = false;
  const r = await dev.generate([7], {
    maxNewTokens: 50,
    onTokens: () => {
      if (!restarted && dev.history.length > 15) {
        restarted = true;
        host.table = new SessionTable(10_000, () => undefined); // the edge process dies: every session is gone
        host.up = false;
        dev.transport.channel.close();
        setTimeout(() => (host.up = true), 30);
      }
    },
  });
  assert.deepEqual(r.tokens, ref);
  assert.equal(dev.resumes.rebuilt, 1);
  assert.ok(r.stats.recoveries >= 1);
  dev.close();
});

test('resume needs the secret: a wrong one gets the same answer as an unknown id (a rebuild), never the session', async () => {
  const host = new ToyHost(10_000, () => null);
  const a = await device(host, { mode: 'dssd', gamma: 3 });
  await a.generate([1], { maxNewTokens: 5 });
  const t = host.connect();
  const replies: Uint8Array[] = [];
  t.onFrame((f) => replies.push(f));
  const { encodeFrame, decodeFrame } = await import('@dssd/codec');
  await t.send(
    encodeFrame(
      {
        kind: 'hello',
        body: {
          protocol: PROTOCOL_VERSION,
          model: toyIdentity(V),
          settings: { ...a.settings },
          resume: { sessionId: a.welcome.sessionId, secret: '0'.repeat(32), committed: 3 },
        },
      },
      { sessionId: 0, round: 0 },
    ),
  );
  for (let waited = 0; replies.length === 0 && waited < 5000; waited += 10)
    await new Promise((r) => setTimeout(r, 10));
  const f = decodeFrame(replies[0], { vocabSize: V });
  // The same welcome an unknown id gets: nothing held, so no oracle for which ids exist.
  assert.equal(f.kind, 'welcome');
  assert.deepEqual((f as { body: { resumed?: unknown } }).body.resumed, { held: 0, digest: 0x811c9dc5 });
  // The real owner still resumes, its KV cache and history kept.
  a.transport.channel.close();
  const r = await a.generate([2], { maxNewTokens: 5 });
  assert.equal(r.tokens.length, 5);
  assert.deepEqual(a.resumes, { kept: 1, rebuilt: 0 });
  a.close();
});

test('offline fallback (opt-in): the draft model finishes the answer, marked unverified', async () => {
  const host = new ToyHost(0, () => null);
  const dev = await device(
    host,
    { mode: 'dssd', gamma: 3 },
    { offlineFallback: true, recovery: { maxAttempts: 2, backoffMs: 1 } },
  );
  const ref = argmaxDecode([2, 9], 40);
  let cut = false;
  const r = await dev.generate([2, 9], {
    maxNewTokens: 40,
    onTokens: () => {
      if (!cut && dev.history.length > 12) {
        cut = true;
        host.up = false;
        dev.transport.channel.close();
      }
    },
  });
  assert.equal(r.tokens.length, 40);
  const firstUnverified = r.origins.indexOf('unverified');
  assert.ok(firstUnverified > 0);
  assert.ok(r.origins.slice(firstUnverified).every((o) => o === 'unverified'));
  assert.deepEqual(
    r.tokens.slice(0, firstUnverified),
    ref.slice(0, firstUnverified),
    'verified part is exact',
  );
  assert.equal(r.stats.unverifiedTokens, 40 - firstUnverified);
  // Without the opt-in the same outage is an error.
  const host2 = new ToyHost(0, () => null);
  const d2 = await device(host2, { mode: 'dssd', gamma: 3 }, { recovery: { maxAttempts: 2, backoffMs: 1 } });
  host2.up = false;
  d2.transport.channel.close();
  await assert.rejects(
    d2.generate([2], { maxNewTokens: 5 }),
    (e: ProtocolError) => e.code === ProtocolErrorCode.Closed,
  );
});
