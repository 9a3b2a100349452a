/**
 * peerChannel over real peers on loopback, on each Node WebRTC stack (@roamhq/wrtc and node-datachannel), and
 * connectEdge against an in-process fake signaling server (the real WebSocket end to end lives in
 * edge-node/test/signaling.test.ts).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import SimplePeer from 'simple-peer';
import { nodeWebrtc, releaseWebrtc } from '../src/node/webrtc.js';
import {
  MAX_BUFFERED_BYTES,
  ProtocolError,
  SESSION_QUERY,
  WEBRTC_STACKS,
  parseSessionQuery,
  ProtocolErrorCode,
  connectEdge,
  peerChannel,
  signalingUrl,
  validateSignalData,
  type PeerConstructor,
  type PeerLike,
  type RawChannel,
  type SignalingSocket,
  type SignalingSocketConstructor,
  type WebrtcStack,
} from '../src/index.js';

const wrtc = nodeWebrtc();
const live: PeerLike[] = [];
/** simple-peer, remembering every instance so that a failing test cannot leave a connection keeping node alive. */
const Peer = function (this: unknown, o: object) {
  const p = new (SimplePeer as unknown as new (o: object) => PeerLike)(o);
  live.push(p);
  return p;
} as unknown as PeerConstructor;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

test.after(async () => {
  // Every peer finishes closing before node-datachannel is released (a leftover peer connection would keep the
  // test process alive): its cleanup times out, failing this file, on a connection still closing.
  await Promise.all(
    live.map(
      (p) =>
        new Promise<void>((r) => {
          if (p.destroyed) return r();
          p.on('close', () => r());
          p.destroy();
          setTimeout(r, 2000);
        }),
    ),
  );
  await sleep(200);
  releaseWebrtc();
});

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** Two connected peers on `stack`, signals exchanged in-process. */
async function peerPair(stack: WebrtcStack): Promise<[PeerLike, PeerLike]> {
  const w = nodeWebrtc(stack);
  const a = new Peer({ initiator: true, wrtc: w, config: { iceServers: [] } });
  const b = new Peer({ wrtc: w, config: { iceServers: [] } });
  a.on('signal', (d: unknown) => b.signal(d));
  b.on('signal', (d: unknown) => a.signal(d));
  await Promise.all([a, b].map((p) => new Promise((r) => p.on('connect', r))));
  return [a, b];
}

type Stats = { bytesSent: number; bytesReceived: number };
async function pollStats(ch: RawChannel, ok: (s: Stats) => boolean): Promise<Stats> {
  let s: Stats | undefined;
  for (let i = 0; i < 100; i++) {
    s = await ch.transportStats!();
    assert.ok(s, 'transport stats are available');
    if (ok(s)) return s;
    await sleep(20);
  }
  assert.fail(`transport stats never reached the expected counts: ${JSON.stringify(s)}`);
}

function expectProtocolError(code: ProtocolErrorCode, pattern?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof ProtocolError, `expected a ProtocolError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (pattern) assert.match(e.message, pattern);
    return true;
  };
}

test('signalingUrl keeps ws(s) URLs and derives /signal from http(s) ones', () => {
  assert.equal(signalingUrl('ws://127.0.0.1:8080/signal'), 'ws://127.0.0.1:8080/signal');
  assert.equal(signalingUrl('wss://edge.example/custom'), 'wss://edge.example/custom');
  assert.equal(signalingUrl('http://127.0.0.1:8080'), 'ws://127.0.0.1:8080/signal');
  assert.equal(signalingUrl('https://edge.example/'), 'wss://edge.example/signal');
  assert.equal(signalingUrl('https://edge.example/dssd/'), 'wss://edge.example/dssd/signal');
  assert.equal(signalingUrl('http://h:1/signal'), 'ws://h:1/signal');
  assert.equal(signalingUrl('http://h:1/?a=1#x'), 'ws://h:1/signal?a=1');
  // A reconnect names its session for a proxy's routing (replacing any session the URL had).
  assert.equal(signalingUrl('http://h:1/', 7), `ws://h:1/signal?${SESSION_QUERY}=7`);
  assert.equal(
    signalingUrl('ws://h:1/signal?session=3&a=1', 4294967295),
    'ws://h:1/signal?session=4294967295&a=1',
  );
  assert.throws(() => signalingUrl('not a url'), expectProtocolError(ProtocolErrorCode.BadSettings));
  assert.throws(() => signalingUrl('ftp://h/'), expectProtocolError(ProtocolErrorCode.BadSettings));
});

test('parseSessionQuery takes one decimal u32 session id and nothing else', () => {
  assert.equal(parseSessionQuery('1'), 1);
  assert.equal(parseSessionQuery('4294967295'), 4294967295);
  for (const bad of ['', '0', '01', '-1', '1.5', '4294967296', '99999999999', 'abc', ' 1', '1e3', '0x10'])
    assert.equal(parseSessionQuery(bad), null, bad);
});

test('validateSignalData accepts the expected description and candidates only', () => {
  const offer = { type: 'offer', sdp: 'v=0\r\n' };
  assert.deepEqual(validateSignalData(offer, 'offer'), offer);
  assert.equal(typeof validateSignalData(offer, 'answer'), 'string');
  assert.equal(typeof validateSignalData({ type: 'answer', sdp: 'v=0' }, 'answer'), 'object');
  const cand = {
    type: 'candidate',
    candidate: { candidate: 'candidate:1 1 udp 1 127.0.0.1 9 typ host', sdpMid: '0', sdpMLineIndex: 0 },
  };
  assert.deepEqual(validateSignalData(cand, 'offer'), cand);
  for (const bad of [
    null,
    [],
    'offer',
    { type: 'offer' },
    { type: 'offer', sdp: '' },
    { type: 'offer', sdp: 5 },
    { type: 'candidate' },
    { type: 'candidate', candidate: { candidate: 7 } },
    { type: 'candidate', candidate: { candidate: '', sdpMLineIndex: 'x' } },
    { type: 'renegotiate', renegotiate: true },
  ]) {
    assert.equal(typeof validateSignalData(bad, 'offer'), 'string', JSON.stringify(bad));
  }
});

for (const stack of WEBRTC_STACKS) {
  test(
    `${stack}: peerChannel: plain Uint8Array messages, views sent exactly, size limit, transport stats, close`,
    { timeout: 10_000 },
    async () => {
      const [a, b] = await peerPair(stack);
      const ca = peerChannel(a);
      const cb = peerChannel(b);
      assert.equal(ca.maxMessageSize(), 262_144);
      assert.equal(ca.bufferedAmount(), 0);
      const got: Uint8Array[] = [];
      cb.onMessage((m) => got.push(m));
      const backing = new Uint8Array(100).map((_, i) => i);
      ca.send(backing.subarray(10, 20)); // a view: only its 10 bytes may travel
      ca.send(new Uint8Array(65_536).fill(7));
      await waitFor(() => got.length === 2, 5000, 'two messages');
      assert.equal(Object.getPrototypeOf(got[0]), Uint8Array.prototype, 'not a Buffer');
      assert.deepEqual([...got[0]!], [10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
      assert.equal(got[1]!.byteLength, 65_536);
      assert.ok(got[1]!.every((x) => x === 7));

      if (stack === 'wrtc') {
        // libwebrtc refreshes its counters lazily: poll briefly.
        const stats = await pollStats(ca, (s) => s.bytesSent >= 65_546);
        assert.ok(stats.bytesReceived > 0);
        const statsB = await pollStats(cb, (s) => s.bytesReceived >= 65_546);
        assert.ok(statsB.bytesSent > 0);
      } else {
        // libdatachannel counts SCTP payload only, not wire bytes: reported as unknown.
        assert.equal(await ca.transportStats!(), undefined);
      }

      const closedB = new Promise<Error | undefined>((r) => cb.onClose(r));
      ca.close();
      assert.equal(await closedB, undefined);
      // A handler registered after the close still hears about it.
      assert.equal(await new Promise((r) => ca.onClose(r)), undefined);
      assert.equal(await ca.transportStats!(), undefined);
      assert.throws(() => ca.send(new Uint8Array(1)), /closed/);
    },
  );

  test(
    `${stack}: peerChannel: an over-limit message ${stack === 'wrtc' ? 'kills the channel silently' : 'throws'} (why FrameTransport chunks)`,
    { timeout: 10_000 },
    async () => {
      const [a, b] = await peerPair(stack);
      const ca = peerChannel(a);
      const cb = peerChannel(b);
      let received = 0;
      cb.onMessage(() => received++);
      if (stack === 'wrtc') {
        const closed = Promise.all([new Promise((r) => ca.onClose(r)), new Promise((r) => cb.onClose(r))]);
        ca.send(new Uint8Array(262_145)); // no exception here: the stack just closes
        await closed;
        assert.equal(received, 0);
      } else {
        assert.throws(() => ca.send(new Uint8Array(262_145)), /size exceeds limit/);
        ca.send(new Uint8Array(262_144)); // the limit itself passes, and the channel is still open
        await waitFor(() => received === 1, 5000, 'the 262,144-byte message');
        ca.close();
      }
    },
  );

  test(
    `${stack}: peerChannel: refuses sends past the 16 MiB send queue instead of dropping them`,
    { timeout: 10_000 },
    async () => {
      const [a, b] = await peerPair(stack);
      const ca = peerChannel(a);
      const cb = peerChannel(b);
      let receivedBytes = 0;
      cb.onMessage((m) => (receivedBytes += m.byteLength));
      const chunk = new Uint8Array(16_384);
      let sent = 0;
      let refused: Error | undefined;
      // No yielding, so the queue only grows (the SCTP layer absorbs several MiB first, uncounted); 64 MiB is far
      // past what it can hold, so the guard must trip.
      for (let i = 0; i < 4096; i++) {
        try {
          ca.send(chunk);
          sent += chunk.byteLength;
        } catch (e) {
          refused = e as Error;
          break;
        }
      }
      assert.ok(refused, 'a send was refused');
      assert.match(refused.message, /queue full/);
      assert.ok(sent >= MAX_BUFFERED_BYTES, `refused early, after ${sent} bytes`);
      // Everything accepted arrives: nothing was dropped.
      await waitFor(() => receivedBytes === sent, 8000, `${sent} bytes (got ${receivedBytes})`);
      ca.close();
    },
  );
}

/**
 * A fake WebSocket class whose "server" runs in-process. Events are dispatched asynchronously like a real socket.
 */
interface FakeServerEnd {
  url: string;
  send(obj: unknown): void;
  sendRaw(data: unknown): void;
  close(): void;
  onMessage(cb: (msg: any) => void): void;
  closedByClient: boolean;
}
function fakeSocketClass(
  server: (end: FakeServerEnd) => void,
  opts: { unreachable?: boolean } = {},
): { WS: SignalingSocketConstructor; ends: FakeServerEnd[] } {
  const ends: FakeServerEnd[] = [];
  class FakeSocket implements SignalingSocket {
    readyState = 0;
    private listeners = new Map<string, ((ev: any) => void)[]>();
    constructor(url: string) {
      let onMsg: (msg: any) => void = () => {};
      const end: FakeServerEnd = {
        url,
        closedByClient: false,
        send: (obj) => end.sendRaw(JSON.stringify(obj)),
        sendRaw: (data) =>
          setImmediate(() => {
            if (this.readyState === 1) this.emit('message', { data });
          }),
        close: () => setImmediate(() => this.shut()),
        onMessage: (cb) => (onMsg = cb),
      };
      ends.push(end);
      setImmediate(() => {
        if (opts.unreachable) {
          this.emit('error', { message: 'connect ECONNREFUSED' });
          this.shut();
          return;
        }
        this.readyState = 1;
        this.emit('open', {});
        server(end);
      });
      this.deliver = (text) => setImmediate(() => onMsg(JSON.parse(text)));
      this.end = end;
    }
    private deliver: (text: string) => void;
    private end: FakeServerEnd;
    private emit(type: string, ev: unknown) {
      for (const l of this.listeners.get(type) ?? []) l(ev);
    }
    private shut() {
      if (this.readyState === 3) return;
      this.readyState = 3;
      this.emit('close', {});
    }
    send(data: string) {
      if (this.readyState !== 1) throw new Error('not open');
      this.deliver(data);
    }
    close() {
      if (this.readyState >= 2) return;
      this.end.closedByClient = true;
      this.readyState = 2;
      setImmediate(() => this.shut());
    }
    addEventListener(type: string, l: (ev: any) => void) {
      this.listeners.set(type, [...(this.listeners.get(type) ?? []), l]);
    }
  }
  return { WS: FakeSocket, ends };
}

/** A fake server that behaves like the edge: join, then a non-initiator peer relaying signals. */
function relayServer(onJoin: (msg: any) => void = () => {}, w = wrtc): (end: FakeServerEnd) => void {
  return (end) => {
    let peer: PeerLike | null = null;
    end.onMessage((msg) => {
      if (msg.type === 'join') {
        onJoin(msg);
        peer = new Peer({ wrtc: w, config: { iceServers: [] } });
        peer.on('signal', (data: unknown) => end.send({ type: 'signal', data }));
        peer.on('connect', () => {
          const ch = peerChannel(peer!);
          ch.onMessage((m) => ch.send(m.map((x) => x + 1))); // echo, incremented
        });
        peer.on('error', () => {});
      } else if (msg.type === 'signal') peer?.signal(msg.data);
    });
  };
}

for (const stack of WEBRTC_STACKS) {
  test(
    `${stack}: connectEdge: joins with the token, relays signals, closes the socket once connected`,
    { timeout: 10_000 },
    async () => {
      const joins: any[] = [];
      const { WS, ends } = fakeSocketClass(relayServer((m) => joins.push(m), nodeWebrtc(stack)));
      const conn = await connectEdge({
        Peer,
        url: 'http://edge.test:9',
        WebSocket: WS,
        wrtc: nodeWebrtc(stack),
        token: 's3cret',
        session: 42,
        timeoutMs: 8000,
      });
      assert.equal(ends[0]!.url, 'ws://edge.test:9/signal?session=42');
      assert.deepEqual(joins, [{ type: 'join', token: 's3cret' }]);
      await waitFor(() => ends[0]!.closedByClient, 1000, 'socket close');
      const got = new Promise<Uint8Array>((r) => conn.channel.onMessage(r));
      conn.channel.send(new Uint8Array([1, 2, 3]));
      assert.deepEqual([...(await got)], [2, 3, 4]);
      const closed = new Promise((r) => conn.channel.onClose(r));
      conn.close();
      await closed;
    },
  );
}

test('connectEdge: without a token the join carries none', { timeout: 10_000 }, async () => {
  const joins: any[] = [];
  const { WS } = fakeSocketClass(relayServer((m) => joins.push(m)));
  const conn = await connectEdge({
    Peer,
    url: 'ws://edge.test/signal',
    WebSocket: WS,
    wrtc,
    timeoutMs: 8000,
  });
  assert.deepEqual(joins, [{ type: 'join' }]);
  conn.close();
});

test(
  'connectEdge: a refusal from the edge rejects with its code, marked remote',
  { timeout: 10_000 },
  async () => {
    const { WS, ends } = fakeSocketClass((end) =>
      end.onMessage(() => {
        end.send({ type: 'error', code: 'Unauthorized', message: 'the token was not accepted' });
        end.close();
      }),
    );
    await assert.rejects(
      connectEdge({ Peer, url: 'ws://edge.test/signal', WebSocket: WS, wrtc, token: 'x', timeoutMs: 8000 }),
      (e: unknown) => {
        expectProtocolError(ProtocolErrorCode.Unauthorized, /token was not accepted/)(e);
        assert.equal((e as ProtocolError).remote, true);
        return true;
      },
    );
    assert.equal(ends.length, 1);
    // Unknown codes map to Internal rather than leaking arbitrary strings into the enum.
    const { WS: WS2 } = fakeSocketClass((end) => end.send({ type: 'error', code: 'Bogus', message: 'no' }));
    await assert.rejects(
      connectEdge({ Peer, url: 'ws://edge.test/signal', WebSocket: WS2, wrtc, timeoutMs: 8000 }),
      expectProtocolError(ProtocolErrorCode.Internal, /no/),
    );
  },
);

test(
  'connectEdge: unreachable edge, early close, timeout, abort, bad edge data',
  { timeout: 10_000 },
  async () => {
    const { WS: Down } = fakeSocketClass(() => {}, { unreachable: true });
    await assert.rejects(
      connectEdge({ Peer, url: 'ws://edge.test/signal', WebSocket: Down, wrtc, timeoutMs: 8000 }),
      expectProtocolError(ProtocolErrorCode.Closed, /cannot reach the edge at ws:\/\/edge\.test\/signal/),
    );

    const { WS: Hangup } = fakeSocketClass((end) => end.close());
    await assert.rejects(
      connectEdge({ Peer, url: 'ws://edge.test/signal', WebSocket: Hangup, wrtc, timeoutMs: 8000 }),
      expectProtocolError(ProtocolErrorCode.Closed, /closed signaling before/),
    );

    const { WS: Silent, ends } = fakeSocketClass(() => {});
    const t0 = Date.now();
    await assert.rejects(
      connectEdge({ Peer, url: 'ws://edge.test/signal', WebSocket: Silent, wrtc, timeoutMs: 200 }),
      expectProtocolError(ProtocolErrorCode.Timeout, /within 200 ms/),
    );
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(ends[0]!.closedByClient, true, 'the socket is closed on timeout');

    const ac = new AbortController();
    const { WS: Silent2 } = fakeSocketClass(() => setTimeout(() => ac.abort(), 20));
    await assert.rejects(
      connectEdge({
        Peer,
        url: 'ws://edge.test/signal',
        WebSocket: Silent2,
        wrtc,
        timeoutMs: 8000,
        signal: ac.signal,
      }),
      expectProtocolError(ProtocolErrorCode.Aborted),
    );

    const cases: [unknown, RegExp][] = [
      ['{not json', /not JSON/],
      [JSON.stringify({ type: 'signal', data: { type: 'offer', sdp: 'v=0' } }), /bad signal data/],
      [new Uint8Array(3), /binary/],
      ['x'.repeat(40_000), /too much/],
    ];
    for (const [raw, pattern] of cases) {
      const { WS: Bad } = fakeSocketClass((end) => end.sendRaw(raw));
      await assert.rejects(
        connectEdge({ Peer, url: 'ws://edge.test/signal', WebSocket: Bad, wrtc, timeoutMs: 8000 }),
        expectProtocolError(ProtocolErrorCode.BadFrame, pattern),
      );
    }
  },
);

test(
  'connectEdge: no WebSocket implementation is a clear BadSettings error',
  { timeout: 10_000 },
  async () => {
    const g = globalThis as { WebSocket?: unknown };
    const saved = Object.getOwnPropertyDescriptor(g, 'WebSocket');
    Object.defineProperty(g, 'WebSocket', { value: undefined, configurable: true, writable: true });
    try {
      await assert.rejects(
        connectEdge({ Peer, url: 'ws://edge.test/signal', wrtc }),
        expectProtocolError(ProtocolErrorCode.BadSettings, /WebSocket/),
      );
    } finally {
      if (saved) Object.defineProperty(g, 'WebSocket', saved);
      else delete g.WebSocket;
    }
  },
);
