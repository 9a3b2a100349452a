/**
 * Reliability and security of the edge node over real WebRTC with the real default models: access (shared
 * secret, signed expiring tokens, origins), limits as typed errors counted in /metrics, resume after a dropped
 * connection and after an edge restart, and a bounded share of the fuzzer (in-process and over a data channel).
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import WebSocket from 'ws';
import { loadNodeModel } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import {
  EDGE_NODE_DEFAULTS,
  ProtocolError,
  ProtocolErrorCode,
  WEBRTC_STACKS,
  type DeviceOptions,
  type WebrtcStack,
} from '@dssd/protocol';
import { DEFAULT_MODEL_DIRS } from '@dssd/models/node';
import { releaseWebrtc } from '@dssd/protocol/node';
import { EdgeNode, Logger, connectNodeDevice } from '../src/index.js';
import { AccessPolicy, checkJoinToken, issueJoinToken } from '../src/access.js';
import { fuzzDataChannel, fuzzInProcess } from '../src/drills/fuzz.js';

const log = new Logger('silent');
const greedy = { temperature: 0, topK: 0, topP: 1 };
const SECRET = 'shared-secret-0123456789';
const KEY = 'token-key-abcdefghijklmnop';
const ISSUER = 'issuer-secret-0123456789';
let node: EdgeNode;
let draft: LanguageModel;

before(async () => {
  // The fuzz share sends a thousand bad frames on one session: no disconnect for errors here.
  node = await EdgeNode.start({ port: 0, log, maxPeerErrors: Infinity });
  draft = await loadNodeModel(DEFAULT_MODEL_DIRS.draft);
});
after(async () => {
  await node.close();
});

async function metric(n: EdgeNode, re: RegExp): Promise<number> {
  // /metrics follows the join credential when one is set (an open edge ignores it).
  const t = await fetch(n.url + '/metrics', { headers: { authorization: `Bearer ${SECRET}` } }).then((r) =>
    r.text(),
  );
  return Number(re.exec(t)?.[1] ?? 0);
}

/** The shared edge on the default stack, or another on `stack` sharing its model (closed by the caller). */
async function edgeOn(stack: WebrtcStack): Promise<{ edge: EdgeNode; done: () => Promise<void> }> {
  if (stack === EDGE_NODE_DEFAULTS.webrtc) return { edge: node, done: async () => undefined };
  const edge = await EdgeNode.start({ port: 0, log, model: node.model, webrtc: stack });
  return { edge, done: () => edge.close() };
}

async function answer(
  url: string,
  settings: DeviceOptions['settings'],
  prompt: string,
  n: number,
  extra = {},
) {
  const d = await connectNodeDevice({ edge: url, settings, draft, ...extra });
  try {
    return (await d.session.generate(draft.tokenizer.encode(prompt), { maxNewTokens: n })).tokens;
  } finally {
    d.close();
  }
}

test('join tokens: signed, expiring, tamper-evident; policies combine secret and key', () => {
  const now = 1_800_000_000;
  const t = issueJoinToken(KEY, 60, now);
  assert.equal(checkJoinToken(KEY, t, now + 59), null);
  assert.equal(checkJoinToken(KEY, t, now + 60 + 31), 'expired');
  assert.equal(checkJoinToken('another-key-0123456789', t, now), 'bad signature');
  const parts = t.split('.');
  assert.equal(
    checkJoinToken(KEY, [parts[0], String(now + 9999), parts[2], parts[3]].join('.'), now),
    'bad signature',
  );
  assert.equal(checkJoinToken(KEY, 'garbage', now), 'malformed');
  assert.throws(() => issueJoinToken('short', 60), /at least 16/);
  assert.throws(() => issueJoinToken(KEY, 10 ** 6), /lifetime/);
  const p = new AccessPolicy({ secret: SECRET, tokenKey: KEY });
  assert.equal(p.check(SECRET), null);
  assert.equal(p.check(issueJoinToken(KEY, 60)), null);
  assert.match(p.check(undefined)!, /requires a token/);
  assert.match(p.check(SECRET + 'x')!, /not accepted/);
  assert.match(p.check(issueJoinToken(KEY, 1, Math.floor(Date.now() / 1000) - 100))!, /expired/);
  assert.equal(new AccessPolicy().check(undefined), null, 'no configuration: open (bound to localhost)');
  const o = new AccessPolicy({ allowedOrigins: ['https://shop.example'], publicOrigins: ['http://edge:1'] });
  assert.ok(o.originAllowed(undefined));
  assert.ok(o.originAllowed('http://localhost:5173'));
  assert.ok(o.originAllowed('https://shop.example'));
  assert.ok(o.originAllowed('http://edge:1'), 'the edge’s public origin');
  assert.ok(!o.originAllowed('https://evil.example'));
  assert.ok(!o.originAllowed('http://evil.example:1', 'evil.example:1'), 'never trusted because Host agrees');
});

test('access: a credential is required when configured; tokens from POST /token work; refusals are counted', async () => {
  const secured = await EdgeNode.start({
    port: 0,
    log,
    model: node.model,
    access: { secret: SECRET, tokenKey: KEY, issuerSecret: ISSUER },
    allowedOrigins: ['https://shop.example'],
  });
  try {
    const s: DeviceOptions['settings'] = { mode: 'dssd', gamma: 4, sampling: greedy };
    await assert.rejects(
      answer(secured.url, s, 'The jury said', 4),
      (e: ProtocolError) => e.code === ProtocolErrorCode.Unauthorized && /requires a token/.test(e.message),
    );
    await assert.rejects(
      answer(secured.url, s, 'The jury said', 4, { token: 'wrong' }),
      (e: ProtocolError) => e.code === ProtocolErrorCode.Unauthorized,
    );
    const expired = issueJoinToken(KEY, 1, Math.floor(Date.now() / 1000) - 120);
    await assert.rejects(answer(secured.url, s, 'The jury said', 4, { token: expired }), (e: ProtocolError) =>
      /expired/.test(e.message),
    );
    assert.equal((await answer(secured.url, s, 'The jury said', 4, { token: SECRET })).length, 4);
    // The operator's backend asks the edge for a token.
    assert.equal((await fetch(secured.url + '/token', { method: 'POST' })).status, 401);
    const res = await fetch(secured.url + '/token?ttl=60', {
      method: 'POST',
      headers: { authorization: `Bearer ${ISSUER}` },
    });
    const { token } = (await res.json()) as { token: string };
    assert.equal((await answer(secured.url, s, 'The jury said', 4, { token })).length, 4);
    // A fleet: another node with the same token key (and no issuer) accepts the token this one issued; a node
    // with another key does not.
    const peer = await EdgeNode.start({ port: 0, log, model: node.model, access: { tokenKey: KEY } });
    const stranger = await EdgeNode.start({
      port: 0,
      log,
      model: node.model,
      access: { tokenKey: KEY.toUpperCase() },
    });
    try {
      assert.equal((await answer(peer.url, s, 'The jury said', 4, { token })).length, 4);
      await assert.rejects(
        answer(stranger.url, s, 'The jury said', 4, { token }),
        (e: ProtocolError) => e.code === ProtocolErrorCode.Unauthorized,
      );
    } finally {
      await peer.close();
      await stranger.close();
    }
    // A page from an origin not on the list is refused before any WebRTC work.
    const msg = await new Promise<string>((resolve) => {
      const ws = new WebSocket(secured.url.replace('http', 'ws') + '/signal', {
        headers: { origin: 'https://evil.example' },
      });
      ws.on('message', (d) => resolve(String(d)));
      ws.on('error', () => resolve('error'));
    });
    assert.match(msg, /"code":"Unauthorized".*evil\.example/);
    assert.ok((await metric(secured, /^dssd_errors_total\{code="Unauthorized"\} (\d+)/m)) >= 4);
    assert.ok((await metric(secured, /^dssd_sessions_refused_total (\d+)/m)) >= 4);
  } finally {
    await secured.close();
  }
});

test('limits: rounds per second and idle timeout end sessions with typed errors counted in /metrics', async () => {
  const limited = await EdgeNode.start({
    port: 0,
    log,
    model: node.model,
    limits: { maxRoundsPerSecond: 3 },
    idleTimeoutMs: 400,
  });
  try {
    await assert.rejects(
      answer(limited.url, { mode: 'dssd', gamma: 1, sampling: greedy }, 'The jury said', 40),
      (e: ProtocolError) => e.code === ProtocolErrorCode.RateLimited && /rounds per second/.test(e.message),
    );
    const d = await connectNodeDevice({
      edge: limited.url,
      settings: { mode: 'ar', sampling: greedy },
      draft,
    });
    await new Promise((r) => setTimeout(r, 1500));
    await assert.rejects(
      d.session.generate([1, 2], { maxNewTokens: 2 }),
      (e: ProtocolError) => e.code === ProtocolErrorCode.Timeout || e.code === ProtocolErrorCode.Closed,
    );
    d.close();
    assert.ok((await metric(limited, /^dssd_errors_total\{code="RateLimited"\} (\d+)/m)) >= 1);
    assert.ok((await metric(limited, /^dssd_errors_total\{code="Timeout"\} (\d+)/m)) >= 1);
  } finally {
    await limited.close();
  }
});

for (const stack of WEBRTC_STACKS) {
  test(`${stack}: resume over WebRTC: a channel dropped mid-answer resumes (KV kept); the greedy answer is unchanged`, async () => {
    const { edge, done } = await edgeOn(stack);
    const settings: DeviceOptions['settings'] = {
      mode: 'dssd',
      codec: 'candidates',
      gamma: 4,
      sampling: greedy,
    };
    const prompt = draft.tokenizer.encode('In the morning the');
    const ref = await answer(edge.url, settings, 'In the morning the', 40, { webrtc: stack });
    const d = await connectNodeDevice({
      edge: edge.url,
      settings,
      draft,
      webrtc: stack,
      recovery: { maxAttempts: 3 },
    });
    let dropped = false;
    const r = await d.session.generate(prompt, {
      maxNewTokens: 40,
      onTokens: () => {
        if (!dropped && d.session.history.length > prompt.length + 12) {
          dropped = true;
          d.session.transport.channel.close(); // the network goes away mid-answer
        }
      },
    });
    assert.deepEqual(r.tokens, ref);
    assert.equal(r.stats.recoveries, 1);
    assert.deepEqual(d.session.resumes, { kept: 1, rebuilt: 0 });
    d.close();
    await done();
  });

  test(`${stack}: edge restart: the device rejoins the restarted edge and rebuilds from its committed tokens`, async () => {
    const first = await EdgeNode.start({ port: 0, log, model: node.model, webrtc: stack });
    const port = Number(new URL(first.url).port);
    const settings: DeviceOptions['settings'] = { mode: 'dssd', gamma: 4, sampling: greedy };
    const ref = await answer(node.url, settings, 'It was a', 40);
    const d = await connectNodeDevice({
      edge: first.url,
      settings,
      draft,
      webrtc: stack,
      recovery: { maxAttempts: 20, backoffMs: 100 },
    });
    let second: EdgeNode | null = null;
    let restarting: Promise<void> | null = null;
    try {
      const r = await d.session.generate(draft.tokenizer.encode('It was a'), {
        maxNewTokens: 40,
        onTokens: () => {
          if (restarting || d.session.history.length < 12) return;
          restarting = (async () => {
            await first.close();
            second = await EdgeNode.start({ port, log, model: node.model, webrtc: stack });
          })();
        },
      });
      assert.deepEqual(r.tokens, ref);
      assert.equal(d.session.resumes.rebuilt, 1);
    } finally {
      d.close();
      await restarting;
      await (second as EdgeNode | null)?.close();
    }
  });
}

test('fuzz (CI share): 50,000 mutated frames in-process, 1,000 over a data channel; the edge keeps serving', async () => {
  const r = await fuzzInProcess({ frames: 50_000, seed: 7, goodEvery: 10_000 });
  assert.equal(r.frames, 50_000);
  assert.equal(r.badReplies, 0);
  assert.equal(r.goodExact, r.goodRuns);
  assert.ok(
    r.accepted > 1000 && r.errors.BadFrame > 10_000 && r.errors.UnexpectedFrame > 100,
    JSON.stringify(r),
  );
  assert.ok(r.heapPeakMb < r.heapStartMb + 200, `heap grew from ${r.heapStartMb} to ${r.heapPeakMb} MiB`);
  const c = await fuzzDataChannel({
    url: node.url,
    frames: 1000,
    seed: 3,
    model: node.identity,
    WebSocket,
    wrtc: createRequire(import.meta.url)('@roamhq/wrtc'),
  });
  assert.equal(c.badReplies, 0);
  assert.ok(c.replies > 500);
  assert.equal(c.signalingRefused, c.signalingAttacks);
  const h = (await fetch(node.url + '/healthz').then((x) => x.json())) as { ok: boolean };
  assert.ok(h.ok);
  const s: DeviceOptions['settings'] = { mode: 'dssd', gamma: 4, sampling: greedy };
  assert.deepEqual(
    await answer(node.url, s, 'The church', 16),
    await answer(node.url, { mode: 'ar', sampling: greedy }, 'The church', 16),
  );
});

// Last: node-datachannel keeps the process alive while any peer connection is open (a test's leftover would hang the
// run rather than fail it).
after(() => releaseWebrtc());
