/**
 * Hardening (issue 12), over real WebRTC against real edges with the default models: every route behind the same
 * door, limits that hold under concurrency, bounded memory per peer. Each test failed on the code before its fix.
 */
import test, { after, before } from 'node:test';
import { releaseWebrtc } from '@dssd/protocol/node';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { decodeFrame, encodeFrame, type DecodedFrame } from '@dssd/codec';
import { DEFAULT_MODEL_DIRS, loadNodeModel } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import { FrameTransport, ProtocolErrorCode, type DeviceOptions, type EdgeConnection } from '@dssd/protocol';
import { EdgeNode, Logger, connectNodeDevice, type EdgeNodeOptions } from '../src/index.js';
// A namespace import: the test also runs against builds that lack the newer exports (it fails, not crashes).
import * as access from '../src/access.js';
import { craftChunk, helloFrame, rawPeer } from '../src/drills/attack.js';

const log = new Logger('silent');
const greedy = { temperature: 0, topK: 0, topP: 1 };
const SECRET = 'hardening-secret-0123456789';
const KEY = 'hardening-token-key-0123456789';
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
let target: LanguageModel;
let draft: LanguageModel;
const edges: EdgeNode[] = [];
const conns: EdgeConnection[] = [];

before(async () => {
  target = await loadNodeModel(DEFAULT_MODEL_DIRS.target);
  draft = await loadNodeModel(DEFAULT_MODEL_DIRS.draft);
});
after(async () => {
  for (const c of conns) c.close();
  for (const e of edges) await e.close();
  releaseWebrtc(); // a leftover node-datachannel peer connection would keep the test process alive
});

async function edge(o: EdgeNodeOptions = {}): Promise<EdgeNode> {
  const e = await EdgeNode.start({ port: 0, log, model: target, ...o });
  edges.push(e);
  return e;
}

/** A raw peer: a real data channel, a FrameTransport, and every frame the edge sent it. */
async function raw(url: string, token?: string) {
  const conn = await rawPeer(url, token, 10_000);
  conns.push(conn);
  const t = new FrameTransport(conn.channel);
  const frames: DecodedFrame[] = [];
  let closed = false;
  t.onFrame((f) => frames.push(decodeFrame(f)));
  t.onClose(() => (closed = true));
  return {
    conn,
    t,
    frames,
    isClosed: () => closed,
    errors: () => frames.filter((f) => f.kind === 'error') as (DecodedFrame & { message: string })[],
    async until(ok: () => boolean, ms = 5000): Promise<boolean> {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (ok()) return true;
        await sleep(20);
      }
      return ok();
    },
  };
}

async function metricsText(n: EdgeNode, auth?: string): Promise<string> {
  return fetch(n.url + '/metrics', { headers: auth ? { authorization: `Bearer ${auth}` } : {} }).then((r) =>
    r.text(),
  );
}

function welcomeBody(f: DecodedFrame | undefined): Record<string, unknown> | undefined {
  return f?.kind === 'welcome' ? (f.body as Record<string, unknown>) : undefined;
}

/** An HTTP request with any Host header. */
function get(url: string, p: string, headers: Record<string, string> = {}, method = 'GET') {
  const u = new URL(url);
  return new Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }>(
    (resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: p, method, headers }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      });
      req.on('error', reject);
      req.end();
    },
  );
}

test('1 /score: the credential, JSON only, token and queue caps (503 + Retry-After), cancelled on disconnect', async () => {
  const n = await edge({ access: { secret: SECRET }, score: { maxQueued: 1 } });
  const body = (conts: number[][]) =>
    JSON.stringify({
      prompt: [1, 2, 3],
      continuations: conts,
      sampling: { temperature: 1, topK: 0, topP: 1 },
    });
  const post = (b: string, headers: Record<string, string>, signal?: AbortSignal) =>
    fetch(n.url + '/score', { method: 'POST', body: b, headers, signal });
  const auth = { authorization: `Bearer ${SECRET}`, 'content-type': 'application/json' };
  assert.equal((await post(body([[5]]), { 'content-type': 'application/json' })).status, 401);
  assert.equal(
    (await post(body([[5]]), { authorization: `Bearer ${SECRET}`, 'content-type': 'text/plain' })).status,
    415,
  );
  assert.equal((await post(body([[5, 6]]), auth)).status, 200);
  // Tokens per request: at most 64 contexts.
  const huge = Array.from({ length: 64 * 2 + 1 }, () =>
    Array.from({ length: target.config.maxContext / 2 }, () => 7),
  );
  const big = await post(body(huge), auth);
  assert.ok(big.status === 400 || big.status === 413, `status ${big.status}`);
  assert.match(((await big.json()) as { error: string }).error, /at most|larger/);
  // A long job fills the queue of 1: the next request is turned away with Retry-After.
  const long = Array.from({ length: 3000 }, (_, i) => [i % 4000, 7, 8, 9]);
  const ac = new AbortController();
  const running = post(body(long), auth, ac.signal).catch((e: Error) => e);
  await sleep(300);
  const full = await post(body([[5]]), auth);
  assert.equal(full.status, 503);
  assert.ok(Number(full.headers.get('retry-after')) > 0);
  // The client goes away: the edge stops its passes, and the next request runs at once.
  ac.abort();
  await running;
  // The edge notices the closed connection at its next pass (the job alone would run for many seconds).
  const t0 = Date.now();
  while (/dssd_score_queued 1\b/.test(await metricsText(n, SECRET)) && Date.now() - t0 < 3000)
    await sleep(20);
  assert.ok(Date.now() - t0 < 3000, `the cancelled job kept the queue for ${Date.now() - t0} ms`);
  assert.equal((await post(body([[5, 6]]), auth)).status, 200);
});

test('2 frames: a small limit before hello, the session-derived limit after, one partial frame with its own deadline, an edge-wide budget', async () => {
  const n = await edge({ partialFrameTimeoutMs: 400, reassemblyBudgetBytes: 40_000 });
  const p = await raw(n.url);
  // Before hello: the first chunk of a 1 MiB frame is refused at once (nothing is allocated).
  p.conn.channel.send(craftChunk(1, 1 << 20, 100, 0));
  assert.ok(await p.until(() => p.errors().length === 1), 'an oversize frame before hello is refused');
  assert.match(p.errors()[0].message, /malformed|bad frame/);
  // After hello (dssd γ 4, |V| 4096): the largest legal frame is a turn at the prompt limit (~98 KB); 1 MiB is refused.
  await p.t.send(helloFrame(draft));
  assert.ok(await p.until(() => p.frames.some((f) => f.kind === 'welcome')));
  p.conn.channel.send(craftChunk(2, 1 << 20, 100, 0));
  assert.ok(await p.until(() => p.errors().length === 2), 'a frame above the session limit is refused');
  // One partial frame per session: a second replaces the first; the budget holds one 30 KB frame.
  p.conn.channel.send(craftChunk(3, 30_000, 3, 0));
  p.conn.channel.send(craftChunk(4, 30_000, 3, 0));
  await sleep(100);
  assert.match(await metricsText(n), /dssd_reassembly_bytes 30003\b/);
  const q = await raw(n.url);
  await q.t.send(helloFrame(draft));
  assert.ok(await q.until(() => q.frames.some((f) => f.kind === 'welcome')));
  q.conn.channel.send(craftChunk(5, 30_000, 3, 0));
  assert.ok(await q.until(() => q.errors().length === 1), 'over the edge-wide budget: refused');
  // Its own deadline frees the partial frame long before the idle timeout.
  await sleep(1200);
  assert.match(await metricsText(n), /dssd_reassembly_bytes 0\b/);
  p.conn.close();
  q.conn.close();
});

test('3 joins: concurrent joins cannot pass --max-sessions; pending and held sessions are capped and in /metrics', async () => {
  const n = await edge({ maxSessions: 3, maxPending: 8, maxHeld: 1, joinsPerSecond: 100 });
  const tries = await Promise.allSettled(Array.from({ length: 10 }, () => raw(n.url)));
  const ok = tries.filter((t) => t.status === 'fulfilled').length;
  assert.ok(ok <= 3, `${ok} of 10 concurrent joins became sessions on a 3-session edge`);
  for (const t of tries) if (t.status === 'fulfilled') t.value.conn.close();
  await sleep(300);
  // Held sessions: two said hello and dropped; only one is held.
  for (let i = 0; i < 2; i++) {
    const p = await raw(n.url);
    await p.t.send(helloFrame(draft));
    assert.ok(await p.until(() => p.frames.some((f) => f.kind === 'welcome')));
    p.conn.close();
    await sleep(300);
  }
  assert.equal(n.table.heldCount, 1);
  const m = await metricsText(n);
  assert.match(m, /dssd_sessions_pending 0\b/);
  assert.match(m, /dssd_sessions_held 1\b/);
});

test('4 pings: a peer that never says hello, or only pings after it, is dropped', async () => {
  const n = await edge({ helloTimeoutMs: 800, idleTimeoutMs: 1500 });
  const ping = encodeFrame({ kind: 'ping', t: 1 }, { sessionId: 0, round: 0 });
  const silent = await raw(n.url);
  const chatty = await raw(n.url);
  await chatty.t.send(helloFrame(draft));
  const pinger = setInterval(() => {
    void silent.t.send(ping).catch(() => undefined);
    void chatty.t.send(ping).catch(() => undefined);
  }, 100);
  try {
    assert.ok(
      await silent.until(() => silent.isClosed(), 4000),
      'the ping-only peer without hello was dropped',
    );
    assert.ok(
      silent.errors().some((e) => /hello/.test(e.message)),
      'told why',
    );
    assert.ok(await chatty.until(() => chatty.isClosed(), 5000), 'pings after hello do not keep it alive');
  } finally {
    clearInterval(pinger);
  }
});

test('5 rebinding: Host must be loopback, an IP literal or a --public-origin; Origin is never checked against Host', async () => {
  const n = await edge({ access: { publicOrigins: ['https://edge.example'] } });
  const port = new URL(n.url).port;
  assert.equal((await get(n.url, '/', { host: `evil.example:${port}` })).status, 421);
  assert.equal((await get(n.url, '/healthz', { host: `evil.example:${port}` })).status, 421);
  assert.equal((await get(n.url, '/healthz', { host: `localhost:${port}` })).status, 200);
  assert.equal((await get(n.url, '/healthz', { host: `edge.example` })).status, 200);
  const signal = (headers: Record<string, string>) =>
    new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/signal`, { headers });
      ws.on('message', (d) => (ws.terminate(), resolve(String(d))));
      ws.on('open', () => setTimeout(() => (ws.terminate(), resolve('open')), 500));
      ws.on('error', () => resolve('error'));
    });
  const evil = `evil.example:${port}`;
  assert.match(await signal({ host: evil, origin: `http://${evil}` }), /Unauthorized/);
  assert.match(await signal({ host: 'edge.example', origin: 'https://evil.example' }), /Unauthorized/);
  assert.equal(await signal({ host: 'edge.example', origin: 'https://edge.example' }), 'open');
  const p = new access.AccessPolicy({ publicOrigins: ['https://edge.example'] });
  assert.ok(p.originAllowed('http://192.168.1.5:8080', '192.168.1.5:8080'), 'a LAN page by IP');
  assert.ok(!p.originAllowed('http://evil.example:8080', 'evil.example:8080'));
});

test('6 log volume: a bad-chunk flood is counted, sampled in the log, and its peer disconnected', async () => {
  const n = await edge({ log: new Logger('info') });
  const p = await raw(n.url);
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  try {
    for (let i = 0; i < 2000 && !p.isClosed(); i++) {
      try {
        p.conn.channel.send(new Uint8Array([i & 0xff]));
      } catch {
        break; // the edge closed the channel
      }
      if (i % 100 === 99) await sleep(10);
    }
    assert.ok(await p.until(() => p.isClosed(), 10_000), 'the flooding peer is disconnected');
  } finally {
    process.stderr.write = write;
  }
  const logged = lines.filter((l) => l.includes('error frame sent')).length;
  assert.ok(logged <= 10, `${logged} log lines for a flood of bad chunks`);
  const m = await metricsText(n);
  assert.ok(Number(/dssd_errors_total\{code="BadFrame"\} (\d+)/.exec(m)?.[1]) > 64);
  assert.ok(Number(/dssd_log_suppressed_total (\d+)/.exec(m)?.[1]) >= 50);
  assert.match(m, /dssd_errors_total\{code="PeerErrorLimit"\} 1/);
});

test('7 /metrics follows the credential (or --metrics-token); /healthz answers liveness only; GET/HEAD only', async () => {
  const n = await edge({ access: { secret: SECRET, metricsToken: 'metrics-token-0123456789' } });
  assert.equal((await fetch(n.url + '/metrics')).status, 401);
  assert.equal((await fetch(n.url + '/metrics', { headers: { authorization: 'Bearer nope' } })).status, 401);
  assert.match(await metricsText(n, SECRET), /dssd_sessions_active/);
  assert.match(await metricsText(n, 'metrics-token-0123456789'), /dssd_sessions_active/);
  assert.deepEqual(await fetch(n.url + '/healthz').then((r) => r.json()), { ok: true });
  const full = (await fetch(n.url + '/healthz', { headers: { authorization: `Bearer ${SECRET}` } }).then(
    (r) => r.json(),
  )) as { model?: unknown };
  assert.ok(full.model);
  assert.equal((await fetch(n.url + '/healthz', { method: 'POST' })).status, 405);
  assert.equal((await fetch(n.url + '/metrics', { method: 'DELETE' })).status, 405);
});

test('8 secrets have a minimum length; joins and issuer-secret guesses are rate limited', async () => {
  assert.throws(() => new access.AccessPolicy({ secret: 'x' }), access.AccessError);
  assert.throws(() => new access.AccessPolicy({ tokenKey: KEY, issuerSecret: 'short' }), access.AccessError);
  const n = await edge({
    access: { tokenKey: KEY, issuerSecret: 'issuer-secret-0123456789' },
    joinsPerSecond: 1,
  });
  const codes: string[] = [];
  for (let i = 0; i < 4; i++) {
    codes.push(
      await new Promise<string>((resolve) => {
        const ws = new WebSocket(n.url.replace('http', 'ws') + '/signal');
        ws.on('message', (d) => (ws.terminate(), resolve(JSON.parse(String(d)).code)));
        ws.on('open', () => ws.send(JSON.stringify({ type: 'join', token: 'wrong' })));
        ws.on('error', () => resolve('error'));
      }),
    );
  }
  assert.deepEqual(codes.slice(0, 2), [ProtocolErrorCode.Unauthorized, ProtocolErrorCode.Unauthorized]);
  assert.equal(codes[3], ProtocolErrorCode.RateLimited);
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++)
    statuses.push(
      (await fetch(n.url + '/token', { method: 'POST', headers: { authorization: 'Bearer guess' + i } }))
        .status,
    );
  assert.equal(statuses[0], 401);
  assert.equal(statuses[11], 429);
  // The bucket refills: after a wait a guess is judged again (and only failures spend it).
  let now = 0;
  const rate = new access.KeyedRate(1, 2, () => now);
  assert.ok(rate.take('a') && rate.take('a') && !rate.take('a'));
  assert.ok(rate.retryAfterS('a') > 0);
  now = 1000;
  assert.equal(rate.retryAfterS('a'), 0);
  assert.ok(rate.take('a') && rate.take('b'));
});

test('9 single-use tokens: a second fresh join is refused; a reconnect may reuse it to resume its own session', async () => {
  const n = await edge({ access: { tokenKey: KEY, singleUseTokens: true } });
  const token = access.issueJoinToken(KEY, 60);
  const settings: DeviceOptions['settings'] = { mode: 'dssd', gamma: 4, sampling: greedy };
  const d = await connectNodeDevice({ edge: n.url, settings, draft, token, recovery: { maxAttempts: 3 } });
  const again = await raw(n.url, token);
  await again.t.send(helloFrame(draft));
  assert.ok(await again.until(() => again.errors().length > 0 || again.frames.length > 0));
  assert.equal(welcomeBody(again.frames[0]), undefined, 'no welcome for a spent token');
  assert.match(again.errors()[0]?.message ?? '', /already used/);
  // The first device's connection drops mid-answer: it reconnects with the same token and resumes.
  const prompt = draft.tokenizer.encode('In the morning the');
  let dropped = false;
  const r = await d.session.generate(prompt, {
    maxNewTokens: 30,
    onTokens: () => {
      if (!dropped && d.session.history.length > prompt.length + 8) {
        dropped = true;
        d.session.transport.channel.close();
      }
    },
  });
  assert.equal(r.tokens.length, 30);
  assert.deepEqual(d.session.resumes, { kept: 1, rebuilt: 0 });
  d.close();
});

test('10 static files: only what the page needs (no maps, .d.ts, tsbuildinfo, compiled tests)', async () => {
  const n = await edge();
  for (const p of [
    '/app.js.map',
    '/tsconfig.tsbuildinfo',
    '/widget.js.map',
    '/ort/ort.min.js.map',
    '/ort/ort.d.ts',
  ])
    assert.equal((await fetch(n.url + p)).status, 404, p);
  const testFile = (await import('node:fs')).readdirSync(
    new URL('../../../web/dist/test/', import.meta.url),
  )[0];
  assert.equal((await fetch(n.url + '/test/' + testFile)).status, 404, 'compiled tests');
  for (const p of [
    '/',
    '/app.js',
    '/widget.js',
    '/embed.html',
    '/ort/ort-wasm-simd-threaded.wasm',
    '/models/draft/config.json',
  ])
    assert.equal((await fetch(n.url + p)).status, 200, p);
});

test('11 bind check: *.localhost is not loopback for binding; a busy port is one line and exit 1', async () => {
  const isLoopbackName = access.isLoopbackName ?? access.isLoopbackHost;
  assert.ok(!isLoopbackName('edge.localhost'));
  assert.ok(isLoopbackName('127.0.0.1') && isLoopbackName('localhost') && isLoopbackName('::1'));
  const bin = fileURLToPath(new URL('../../bin/dssd.js', import.meta.url));
  const run = (args: string[]) =>
    new Promise<{ code: number | null; err: string }>((resolve) => {
      const c = spawn(process.execPath, [bin, 'serve', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      c.stderr.on('data', (d) => (err += d));
      const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
      c.on('exit', (code) => (clearTimeout(timer), resolve({ code, err })));
    });
  const a = await run(['--host', 'edge.localhost', '--log-level', 'silent']);
  assert.equal(a.code, 2);
  assert.match(a.err, /exposes the edge/);
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  try {
    const port = (busy.address() as net.AddressInfo).port;
    const b = await run(['--port', String(port), '--log-level', 'silent']);
    assert.equal(b.code, 1);
    assert.equal(b.err.trim().split('\n').length, 1, b.err);
    assert.match(b.err, /already in use/);
  } finally {
    busy.close();
  }
});

test('12 session ids are random; an unknown id and a wrong secret get the same welcome (a rebuild)', async () => {
  const n = await edge();
  const peers = [await raw(n.url), await raw(n.url), await raw(n.url)];
  for (const p of peers) await p.t.send(helloFrame(draft));
  for (const p of peers) assert.ok(await p.until(() => welcomeBody(p.frames[0]) !== undefined));
  const ids = peers.map((p) => welcomeBody(p.frames[0])!.sessionId as number);
  assert.ok(!(ids[1] === ids[0] + 1 && ids[2] === ids[1] + 1), `sequential ids ${ids}`);
  const known = ids[0];
  const unknown = (known % 0xfffffff0) + 7;
  const answers = [];
  for (const sid of [known, unknown]) {
    const p = await raw(n.url);
    await p.t.send(helloFrame(draft, { sessionId: sid, secret: '0'.repeat(32), committed: 5 }));
    assert.ok(await p.until(() => p.frames.length > 0));
    const w = welcomeBody(p.frames[0]);
    assert.ok(w, `session ${sid === known ? 'known' : 'unknown'}: ${JSON.stringify(p.frames[0])}`);
    answers.push(w.resumed);
    p.conn.close();
  }
  assert.deepEqual(answers[0], answers[1]);
  assert.deepEqual(answers[0], { held: 0, digest: 0x811c9dc5 });
  for (const p of peers) p.conn.close();
});

test('13 the session a reconnect names in the signaling URL (a proxy routing key) must be one u32 id', async () => {
  const n = await edge();
  for (const q of ['session=abc', 'session=0', 'session=4294967296', 'session=1&session=2', 'session=']) {
    await assert.rejects(
      rawPeer(`${n.url}/signal?${q}`, undefined, 10_000),
      (e: { code?: string; message?: string }) =>
        e.code === ProtocolErrorCode.BadFrame && /session/.test(e.message ?? ''),
      q,
    );
  }
  // A well-formed id is only a hint: the edge joins the device as usual (the hello's secret decides a resume).
  const p = await raw(`${n.url}/signal?session=4294967295`);
  await p.t.send(helloFrame(draft));
  assert.ok(await p.until(() => welcomeBody(p.frames[0]) !== undefined));
  p.conn.close();
});
