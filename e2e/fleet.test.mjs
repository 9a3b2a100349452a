// A fleet behind a standard proxy: Debian's nginx (`dssd nginx-config`) in front of two edge processes on
// loopback, sharing one token key. A device (Node, then the page in Chromium) answers through the proxy; the node
// serving it is killed (SIGKILL) mid-answer; the device reconnects through the proxy, lands on the other node,
// which rebuilds the session from the device's committed tokens, and the greedy answer equals edge-only decoding:
// no token lost or duplicated. Needs nginx (`.ci/run` installs it) and `npm run build`.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { NGINX } from './chromium.mjs';
import { GREEDY_DSSD, GREEDY_TOKENS, PROMPT, ROOT, expect, query, test as base } from './fixtures.mjs';

const KEY = 'fleet-token-key-0123456789abcdef';
const log = (...a) => console.log('  [fleet e2e]', ...a);

/** A free loopback port (nginx needs one named in its configuration). */
async function freePort() {
  const s = createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/** `dssd serve` in a process of its own (so it can be killed); resolves once it listens. */
async function startNode(port, extra = []) {
  const bin = join(ROOT, 'edge-node/bin/dssd.js');
  // An emulated 20 ms target pass keeps the answer streaming long enough to kill its node mid-way.
  const args = ['serve', '--port', String(port), '--token-key', KEY, '--target-ms', '20,0', ...extra];
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`node :${port} did not start: ${err}`)), 60_000);
    child.stdout.on('data', (d) => {
      out += d;
      if (/Open \S+ in a browser/.test(out)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (c) => reject(new Error(`node :${port} exited with ${c}: ${err}`)));
  });
  return { port, child, url: `http://127.0.0.1:${port}`, kill: () => child.kill('SIGKILL') };
}

/** Live sessions of a node, asked directly (not through the proxy) with a join token as the credential. */
async function liveSessions(node, token) {
  try {
    const r = await fetch(node.url + '/healthz', { headers: { authorization: `Bearer ${token}` } });
    return (await r.json()).sessions ?? 0;
  } catch {
    return -1; // dead
  }
}

const test = base.extend({
  /** nginx on a free port in front of two edge processes: { url, nodes, token() }. */
  fleet: async ({}, use) => {
    if (!existsSync(NGINX))
      throw new Error(`${NGINX} is missing: apt-get install nginx (npm test's pretest does)`);
    const { nginxFleetConfig, issueJoinToken } = await import('@dssd/edge-node');
    const ports = [await freePort(), await freePort(), await freePort()];
    const nodes = await Promise.all([startNode(ports[1]), startNode(ports[2])]);
    const dir = mkdtempSync(join(tmpdir(), 'dssd-nginx-'));
    const conf = join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      nginxFleetConfig({
        listen: `127.0.0.1:${ports[0]}`,
        upstreams: nodes.map((n) => `127.0.0.1:${n.port}`),
        prefix: dir,
      }),
    );
    const nginx = spawn(
      NGINX,
      ['-p', dir, '-c', conf, '-e', join(dir, 'error.log'), '-g', `daemon off; pid ${dir}/nginx.pid;`],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    const url = `http://127.0.0.1:${ports[0]}`;
    for (let i = 0; ; i++) {
      if ((await fetch(url + '/healthz').catch(() => null))?.ok) break;
      if (i > 100) throw new Error('nginx did not come up');
      await new Promise((r) => setTimeout(r, 100));
    }
    await use({ url, nodes, token: () => issueJoinToken(KEY, 600) });
    nginx.kill('SIGTERM');
    for (const n of nodes) n.kill();
    await new Promise((r) => nginx.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  },
});

/** Edge-only greedy decoding of PROMPT through the proxy: the reference. */
async function reference(fleet) {
  const { connectNodeDevice } = await import('@dssd/edge-node');
  const dev = await connectNodeDevice({
    edge: fleet.url,
    token: fleet.token(),
    settings: { mode: 'ar', sampling: { temperature: 0, topK: 0, topP: 1 } },
  });
  try {
    const ids = dev.draft.tokenizer.encode(PROMPT);
    const r = await dev.session.generate(ids, { maxNewTokens: GREEDY_TOKENS });
    return { tokens: r.tokens, text: dev.draft.tokenizer.decode(r.tokens) };
  } finally {
    dev.close();
  }
}

/** Kills the node serving the one live session; returns it. */
async function killServing(fleet) {
  const counts = await Promise.all(fleet.nodes.map((n) => liveSessions(n, fleet.token())));
  const i = counts.findIndex((c) => c === 1);
  expect(counts.filter((c) => c === 1).length, `one node serves the session: ${counts}`).toBe(1);
  fleet.nodes[i].kill();
  log(`killed node :${fleet.nodes[i].port} (sessions per node ${counts})`);
  return fleet.nodes[i];
}

test('fleet: a Node device through nginx survives its node being killed mid-answer (rebuilt on the other node)', async ({
  fleet,
}) => {
  const ref = await reference(fleet);
  const { connectNodeDevice } = await import('@dssd/edge-node');
  const dev = await connectNodeDevice({
    edge: fleet.url,
    token: fleet.token(),
    settings: { mode: 'dssd', gamma: 4, codec: 'auto', sampling: { temperature: 0, topK: 0, topP: 1 } },
    recovery: { maxAttempts: 10, backoffMs: 200 },
  });
  try {
    const ids = dev.draft.tokenizer.encode(PROMPT);
    let killing = null;
    const t0 = Date.now();
    const r = await dev.session.generate(ids, {
      maxNewTokens: GREEDY_TOKENS,
      onTokens: () => {
        if (!killing && dev.session.history.length >= ids.length + 12) killing = killServing(fleet);
      },
    });
    const killed = await killing;
    expect(killed, 'a node was killed mid-answer').toBeTruthy();
    expect(r.tokens, 'no token lost or duplicated').toEqual(ref.tokens);
    expect(dev.session.resumes, 'resumed on the other node: rebuilt').toEqual({ kept: 0, rebuilt: 1 });
    const survivor = fleet.nodes.find((n) => n !== killed);
    expect(await liveSessions(survivor, fleet.token())).toBe(1);
    log(`Node device: ${r.tokens.length} tokens, equal to ar; recovered in ${Date.now() - t0} ms`);
  } finally {
    dev.close();
  }
});

test('fleet: the page through nginx survives its node being killed mid-answer', async ({
  context,
  fleet,
}) => {
  const ref = await reference(fleet);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(fleet.url + query({ ...GREEDY_DSSD, codec: 'auto', token: fleet.token() }));
  await page.getByRole('status').filter({ hasText: 'Connected to the edge' }).waitFor({ timeout: 60_000 });
  await page.getByRole('textbox', { name: 'Prompt' }).fill(PROMPT);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('.answer[aria-busy="true"] .tok').nth(8).waitFor({ timeout: 30_000 });
  const killed = await killServing(fleet);
  const answer = page.getByLabel('Answer', { exact: true }).last();
  await answer.and(page.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 90_000 });
  expect(await page.getByRole('alert').isVisible()).toBe(false);
  expect(await answer.getAttribute('data-done')).toBe('maxTokens');
  expect(await answer.textContent(), 'no token lost or duplicated').toBe(ref.text);
  const survivor = fleet.nodes.find((n) => n !== killed);
  expect(await liveSessions(survivor, fleet.token())).toBe(1);
  expect(errors).toEqual([]);
});
