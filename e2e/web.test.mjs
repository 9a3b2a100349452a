// End-to-end: the browser device (web/dist) in headless Chromium against a real edge started here, over real
// WebRTC. Needs `npm run build` first (web/dist and edge-node/dist). Skips only when /usr/bin/chromium is absent.
// Screenshots go to e2e/artifacts/ (gitignored).
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { CHROMIUM, CHROMIUM_ARGS, WEBRTC_LOOPBACK_ARGS } from './chromium.mjs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('artifacts/', import.meta.url));
const PROMPT = 'The jury said';
const GREEDY_TOKENS = 48;

const skip = !existsSync(CHROMIUM)
  ? `${CHROMIUM} is absent (apt-get install chromium); browser tests skipped`
  : !existsSync(join(ROOT, 'web/dist/app.js'))
    ? 'web/dist is not built: run `npm run build` first'
    : false;

let edge; // EdgeNode
let ctx; // browser context
let profile;
let reference; // { ids, text, tokens } from a Node `ar` device, greedy
const log = (...a) => console.log('  [web e2e]', ...a);

before(async () => {
  if (skip) return;
  mkdirSync(ARTIFACTS, { recursive: true });
  const { EdgeNode, Logger, connectNodeDevice } = await import('@dssd/edge-node');
  edge = await EdgeNode.start({ port: 0, log: new Logger('silent') });
  // The edge-only greedy reference, through the same protocol from Node, with the page's prompt ids.
  const dev = await connectNodeDevice({
    edge: edge.url,
    settings: { mode: 'ar', sampling: { temperature: 0, topK: 0, topP: 1 } },
  });
  try {
    const ids = dev.draft.tokenizer.encode(PROMPT);
    const r = await dev.session.generate(ids, { maxNewTokens: GREEDY_TOKENS });
    reference = { ids, tokens: r.tokens, text: dev.draft.tokenizer.decode(r.tokens) };
  } finally {
    dev.close();
  }
  const { chromium } = await import('playwright-core');
  profile = mkdtempSync(join(tmpdir(), 'dssd-web-prof-'));
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 800 },
    args: [...CHROMIUM_ARGS, ...WEBRTC_LOOPBACK_ARGS],
  });
});

after(async () => {
  await ctx?.close();
  await edge?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

/** A fresh page that records page errors. */
async function openPage(url) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  return { page, errors };
}

async function waitConnected(root) {
  await root.getByRole('status').filter({ hasText: 'Connected to the edge' }).waitFor({ timeout: 60_000 });
}

/** Types a prompt, sends it, waits for the last answer to finish; returns its text and the stats. */
async function ask(root, prompt) {
  await root.getByRole('textbox', { name: 'Prompt' }).fill(prompt);
  await root.getByRole('button', { name: 'Send', exact: true }).click();
  const answer = root.getByLabel('Answer', { exact: true }).last();
  await answer.and(root.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 60_000 });
  const text = await answer.textContent();
  const alert = root.getByRole('alert');
  const alertText = (await alert.isVisible()) ? await alert.textContent() : null;
  const json = await root.locator('dl.stats').getAttribute('data-json');
  const done = await answer.getAttribute('data-done');
  return { text, stats: json ? JSON.parse(json) : null, done, alert: alertText };
}

/** A second edge sharing the loaded target, each pass padded to `ms` (emulated), so answers stream slowly. */
async function slowEdge(ms) {
  const { EdgeNode, Logger } = await import('@dssd/edge-node');
  return EdgeNode.start({
    port: 0,
    log: new Logger('silent'),
    model: edge.model,
    targetCost: { a: ms, b: 0 },
  });
}

function query(o) {
  return '?' + new URLSearchParams(Object.entries(o).map(([k, v]) => [k, String(v)])).toString();
}

test(
  'chat page: greedy DSSD text equals the edge-only greedy text; statistics plausible',
  { skip, timeout: 120_000 },
  async () => {
    const { page, errors } = await openPage(
      edge.url +
        query({
          temperature: 0,
          gamma: 4,
          maxTokens: GREEDY_TOKENS,
          topK: 0,
          topP: 1,
          mode: 'dssd',
          codec: 'candidates',
        }),
    );
    try {
      await waitConnected(page);
      const r = await ask(page, PROMPT);
      assert.equal(r.alert, null);
      assert.equal(r.text, reference.text);
      const s = r.stats;
      assert.equal(s.tokens, reference.tokens.length);
      assert.ok(s.uplinkBytesPerToken > 0 && s.downlinkBytesPerToken > 0, JSON.stringify(s));
      assert.ok(s.acceptanceRate >= 0 && s.acceptanceRate <= 1, `acceptance ${s.acceptanceRate}`);
      assert.ok(s.meanAcceptanceLength >= 1 && s.meanAcceptanceLength <= 5); // accepted + 1 per round, γ = 4
      assert.ok(s.acceptancePerPosition.every((a) => a >= 0 && a <= 1));
      // DSSD sends ids + q's; DSD would send γ·|V| floats per round.
      assert.ok(s.dsdUplinkBytesPerToken > 10 * s.uplinkBytesPerToken, JSON.stringify(s));
      assert.ok(s.tokensPerSecond > 0);
      assert.equal(await page.locator('[data-stat="up"]').count(), 1);
      // Text is coloured by origin: drafted tokens appear, and the spans add up to the answer.
      assert.ok((await page.locator('.answer .tok-draft').count()) > 0);
      log(
        `greedy dssd/candidates γ=4: ${s.tokens} tokens, ${s.tokensPerSecond.toFixed(1)} tokens/s, acceptance ` +
          `${s.acceptanceRate.toFixed(3)}, mean acceptance length ${s.meanAcceptanceLength.toFixed(2)}, up ` +
          `${s.uplinkBytesPerToken.toFixed(1)} B/token (DSD ${s.dsdUplinkBytesPerToken.toFixed(0)}), down ` +
          `${s.downlinkBytesPerToken.toFixed(1)} B/token`,
      );

      // Multi-turn: a second turn continues the conversation.
      const r2 = await ask(page, 'Then');
      assert.ok(r2.text.length > 0);
      assert.equal(await page.getByLabel('Answer', { exact: true }).count(), 2);
      await page.screenshot({ path: join(ARTIFACTS, 'chat.png'), fullPage: true });
      log(`screenshot ${join(ARTIFACTS, 'chat.png')}`);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
    }
  },
);

test(
  'chat page: sampled mode with a seed is reproducible across two page loads',
  { skip, timeout: 120_000 },
  async () => {
    const url =
      edge.url +
      query({
        temperature: 1,
        topP: 0.95,
        gamma: 3,
        maxTokens: 40,
        seed: 7,
        mode: 'dssd',
        codec: 'candidates',
      });
    const texts = [];
    for (let i = 0; i < 2; i++) {
      const { page, errors } = await openPage(url);
      try {
        await waitConnected(page);
        const r = await ask(page, PROMPT);
        assert.equal(r.alert, null);
        assert.ok(r.text.length > 0);
        texts.push(r.text);
        assert.deepEqual(errors, []);
      } finally {
        await page.close();
      }
    }
    assert.equal(texts[0], texts[1]);
    // A greedy answer would be the reference; a seeded sample at temperature 1 almost surely differs from it.
    assert.notEqual(texts[0], reference.text);
  },
);

/** A host page on another origin (127.0.0.1 vs the edge's localhost, another port) embedding the widget. */
function hostServer(edgeUrl) {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>host page</title>
<script type="module" src="${edgeUrl}/widget.js"></script></head>
<body><h1>A page on another origin</h1>
<dssd-chat edge="${edgeUrl}" temperature="0" gamma="4" max-tokens="${GREEDY_TOKENS}" top-p="1" codec="auto" height="620px"></dssd-chat>
<script>
  window.events = { ready: 0, tokens: [], answers: [], errors: [] };
  const el = document.querySelector('dssd-chat');
  el.addEventListener('dssd-ready', () => window.events.ready++);
  el.addEventListener('dssd-token', (e) => window.events.tokens.push(e.detail));
  el.addEventListener('dssd-answer', (e) => window.events.answers.push(e.detail));
  el.addEventListener('dssd-error', (e) => window.events.errors.push(e.detail));
</script></body></html>`;
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

test(
  'widget: <dssd-chat> on a page of another origin works end to end',
  { skip, timeout: 120_000 },
  async () => {
    const host = await hostServer(edge.url);
    const hostUrl = `http://127.0.0.1:${host.address().port}/`;
    const { page, errors } = await openPage(hostUrl);
    try {
      assert.notEqual(new URL(hostUrl).origin, new URL(edge.url).origin);
      const frame = page.frameLocator('dssd-chat iframe');
      await waitConnected(frame);
      assert.equal(await page.evaluate(() => window.events.ready), 1);
      // Typed into the widget: the host page receives the tokens and the finished answer as DOM events.
      const r = await ask(frame, PROMPT);
      assert.equal(r.alert, null);
      assert.equal(r.text, reference.text);
      await page.waitForFunction(() => window.events.answers.length === 1);
      const ev = await page.evaluate(() => window.events);
      assert.equal(ev.answers[0].text, reference.text);
      assert.deepEqual(ev.answers[0].tokens, reference.tokens);
      assert.equal(ev.tokens.map((t) => t.text).join(''), reference.text);
      assert.ok(ev.answers[0].stats.uplinkBytesPerToken > 0);
      // Asked by the host page through the element's API.
      await page.evaluate(() => document.querySelector('dssd-chat').ask('Then'));
      await page.waitForFunction(() => window.events.answers.length === 2, null, { timeout: 60_000 });
      assert.ok((await page.evaluate(() => window.events.answers[1].text)).length > 0);
      assert.deepEqual(await page.evaluate(() => window.events.errors), []);
      await page.screenshot({ path: join(ARTIFACTS, 'widget.png'), fullPage: true });
      log(`screenshot ${join(ARTIFACTS, 'widget.png')}`);

      // The edge's headers: widget.js is loadable cross-origin; only allowed origins may frame embed.html.
      const w = await fetch(edge.url + '/widget.js', { headers: { origin: new URL(hostUrl).origin } });
      assert.equal(w.headers.get('access-control-allow-origin'), '*');
      const e = await fetch(edge.url + '/embed.html');
      assert.equal(e.headers.get('content-security-policy'), 'frame-ancestors *');
      const i = await fetch(edge.url + '/');
      assert.equal(i.headers.get('content-security-policy'), "frame-ancestors 'self'");
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
      host.close();
    }
  },
);

test(
  'widget: an edge with an origin allow-list refuses other framers',
  { skip, timeout: 60_000 },
  async () => {
    const { EdgeNode, Logger } = await import('@dssd/edge-node');
    const listed = await EdgeNode.start({
      port: 0,
      log: new Logger('silent'),
      model: edge.model,
      allowedOrigins: ['https://example.org'],
    });
    try {
      const e = await fetch(listed.url + '/embed.html');
      assert.equal(e.headers.get('content-security-policy'), "frame-ancestors 'self' https://example.org");
      const ok = await fetch(listed.url + '/widget.js', { headers: { origin: 'https://example.org' } });
      assert.equal(ok.headers.get('access-control-allow-origin'), 'https://example.org');
      const no = await fetch(listed.url + '/widget.js', { headers: { origin: 'https://evil.example' } });
      assert.equal(no.headers.get('access-control-allow-origin'), null);
      // In the browser: a host page of an unlisted origin gets no widget frame content.
      const host = await hostServer(listed.url);
      const { page } = await openPage(`http://127.0.0.1:${host.address().port}/`);
      try {
        await page.waitForTimeout(1500);
        assert.equal(await page.evaluate(() => window.events.ready), 0);
      } finally {
        await page.close();
        host.close();
      }
    } finally {
      await listed.close();
    }
  },
);

test(
  'chat page: the data channel dropping mid-answer reconnects and resumes; the greedy answer is unchanged',
  { skip, timeout: 120_000 },
  async () => {
    // A slower (emulated) target so the answer is still streaming when the channel is cut.
    const slow = await slowEdge(20);
    const { page, errors } = await openPage(
      slow.url +
        query({
          temperature: 0,
          gamma: 4,
          maxTokens: GREEDY_TOKENS,
          topK: 0,
          topP: 1,
          mode: 'dssd',
          codec: 'auto',
        }),
    );
    try {
      await waitConnected(page);
      await page.getByRole('textbox', { name: 'Prompt' }).fill(PROMPT);
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await page.locator('.answer[aria-busy="true"] .tok').nth(8).waitFor({ timeout: 30_000 });
      // The network goes away under the session: the edge's side of the data channel closes.
      const live = [...slow.sessions.values()];
      assert.equal(live.length, 1);
      live[0].transport.close();
      const answer = page.getByLabel('Answer', { exact: true }).last();
      await answer.and(page.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 60_000 });
      assert.equal(await answer.getAttribute('data-done'), 'maxTokens');
      assert.equal(await answer.textContent(), reference.text, 'no token lost or duplicated');
      assert.equal(await page.getByRole('alert').isVisible(), false);
      const m = await fetch(slow.url + '/metrics').then((r) => r.text());
      assert.match(m, /^dssd_sessions_total 2$/m, 'a second peer connection resumed the session');
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
      await slow.close();
    }
  },
);

test(
  'chat page: Stop ends an answer; the edge going away mid-answer gives a clear message, no stuck UI',
  { skip, timeout: 120_000 },
  async () => {
    // A slower (emulated) target so the answer is surely still streaming when the edge goes away.
    const doomed = await slowEdge(25);
    let closed = false;
    const { page, errors } = await openPage(
      doomed.url + query({ temperature: 1, seed: 3, gamma: 4, maxTokens: 400, mode: 'dssd' }),
    );
    try {
      await waitConnected(page);
      // Stop first: the answer ends as 'stopped', with no error, and the session stays usable.
      await page.getByRole('textbox', { name: 'Prompt' }).fill(PROMPT);
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      await page.locator('.answer[aria-busy="true"] .tok').first().waitFor({ timeout: 30_000 });
      await page.getByRole('button', { name: 'Stop' }).click();
      const first = page.getByLabel('Answer', { exact: true }).first();
      await first.and(page.locator('[aria-busy="false"]')).waitFor({ timeout: 30_000 });
      assert.equal(await first.getAttribute('data-done'), 'stopped');
      assert.equal(await page.getByRole('alert').isVisible(), false);

      await page.getByRole('textbox', { name: 'Prompt' }).fill('And');
      await page.getByRole('button', { name: 'Send', exact: true }).click();
      const answer = page.getByLabel('Answer', { exact: true }).last();
      await answer.locator('.tok').first().waitFor({ timeout: 30_000 });
      await doomed.close();
      closed = true;
      await answer.and(page.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 40_000 });
      const alert = page.getByRole('alert');
      await alert.waitFor();
      assert.match(await alert.textContent(), /connection to the edge was lost/i);
      assert.equal(await answer.getAttribute('data-done'), 'error');
      assert.ok((await answer.textContent()).length > 0, 'the text received so far stays');
      assert.equal(await page.getByRole('button', { name: 'Send', exact: true }).isEnabled(), true);
      assert.equal(await page.getByRole('button', { name: 'Stop' }).isEnabled(), false);
      await page.screenshot({ path: join(ARTIFACTS, 'edge-lost.png'), fullPage: true });
      log(`screenshot ${join(ARTIFACTS, 'edge-lost.png')}`);
      // Sending again reports the unreachable edge instead of hanging.
      const r = await ask(page, 'again');
      assert.match(r.alert ?? '', /cannot reach the edge/i);
      assert.deepEqual(errors, []);
    } finally {
      await page.close();
      if (!closed) await doomed.close();
    }
  },
);

test(
  'chat page: a refused session and a browser without WebRTC give clear messages',
  { skip, timeout: 60_000 },
  async () => {
    // Refused: the settings ask for a γ beyond the edge's limit (16).
    const { page } = await openPage(edge.url + query({ gamma: 32, temperature: 0 }));
    try {
      const alert = page.getByRole('alert');
      await alert.waitFor({ timeout: 60_000 });
      assert.match(await alert.textContent(), /refused the session \(BadSettings\)/);
    } finally {
      await page.close();
    }
    const bare = await ctx.newPage();
    try {
      await bare.addInitScript(() => {
        delete window.RTCPeerConnection;
        delete window.webkitRTCPeerConnection;
      });
      await bare.goto(edge.url + '/');
      const alert = bare.getByRole('alert');
      await alert.waitFor({ timeout: 30_000 });
      assert.match(await alert.textContent(), /no WebRTC/);
      assert.equal(await bare.getByRole('button', { name: 'Send', exact: true }).isEnabled(), true);
    } finally {
      await bare.close();
    }
  },
);
