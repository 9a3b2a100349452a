// End-to-end: the browser device (web/dist) in headless Chromium against a real edge (fixtures.mjs), over real
// WebRTC. Needs `npm run build` first (web/dist and edge-node/dist). Screenshots are attached to the HTML report.
import { createServer } from 'node:http';
import { GREEDY_DSSD, GREEDY_TOKENS, PROMPT, expect, query, test } from './fixtures.mjs';

const log = (...a) => console.log('  [web e2e]', ...a);

/** A fresh page in the test's context that records page errors. */
async function openPage(context, url) {
  const page = await context.newPage();
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

async function attachScreenshot(testInfo, page, name) {
  await testInfo.attach(name, { body: await page.screenshot({ fullPage: true }), contentType: 'image/png' });
}

test('chat page: greedy DSSD text equals the edge-only greedy text; statistics plausible', async ({
  context,
  edge,
  reference,
}, testInfo) => {
  const { page, errors } = await openPage(context, edge.url + query({ ...GREEDY_DSSD, codec: 'candidates' }));
  await waitConnected(page);
  const r = await ask(page, PROMPT);
  expect(r.alert).toBeNull();
  expect(r.text).toBe(reference.text);
  const s = r.stats;
  expect(s.tokens).toBe(reference.tokens.length);
  expect(s.uplinkBytesPerToken > 0 && s.downlinkBytesPerToken > 0, JSON.stringify(s)).toBe(true);
  expect(s.acceptanceRate >= 0 && s.acceptanceRate <= 1, `acceptance ${s.acceptanceRate}`).toBe(true);
  // accepted + 1 per round, γ = 4
  expect(s.meanAcceptanceLength >= 1 && s.meanAcceptanceLength <= 5, `MAL ${s.meanAcceptanceLength}`).toBe(
    true,
  );
  expect(s.acceptancePerPosition.every((a) => a >= 0 && a <= 1)).toBe(true);
  // DSSD sends ids + q's; DSD would send γ·|V| floats per round.
  expect(s.dsdUplinkBytesPerToken > 10 * s.uplinkBytesPerToken, JSON.stringify(s)).toBe(true);
  expect(s.tokensPerSecond).toBeGreaterThan(0);
  expect(await page.locator('[data-stat="up"]').count()).toBe(1);
  // Text is coloured by origin: drafted tokens appear, and the spans add up to the answer.
  expect(await page.locator('.answer .tok-draft').count()).toBeGreaterThan(0);
  log(
    `greedy dssd/candidates γ=4: ${s.tokens} tokens, ${s.tokensPerSecond.toFixed(1)} tokens/s, acceptance ` +
      `${s.acceptanceRate.toFixed(3)}, mean acceptance length ${s.meanAcceptanceLength.toFixed(2)}, up ` +
      `${s.uplinkBytesPerToken.toFixed(1)} B/token (DSD ${s.dsdUplinkBytesPerToken.toFixed(0)}), down ` +
      `${s.downlinkBytesPerToken.toFixed(1)} B/token`,
  );

  // Multi-turn: a second turn continues the conversation.
  const r2 = await ask(page, 'Then');
  expect(r2.text.length).toBeGreaterThan(0);
  expect(await page.getByLabel('Answer', { exact: true }).count()).toBe(2);
  await attachScreenshot(testInfo, page, 'chat');
  expect(errors).toEqual([]);
});

test('chat page: sampled mode with a seed is reproducible across two page loads', async ({
  context,
  edge,
  reference,
}) => {
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
    const { page, errors } = await openPage(context, url);
    try {
      await waitConnected(page);
      const r = await ask(page, PROMPT);
      expect(r.alert).toBeNull();
      expect(r.text.length).toBeGreaterThan(0);
      texts.push(r.text);
      expect(errors).toEqual([]);
    } finally {
      await page.close();
    }
  }
  expect(texts[0]).toBe(texts[1]);
  // A greedy answer would be the reference; a seeded sample at temperature 1 almost surely differs from it.
  expect(texts[0]).not.toBe(reference.text);
});

/** A host page on another origin (127.0.0.1 vs the edge's localhost, another port) embedding the widget. */
function hostServer(edgeUrl) {
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>host page</title>
<script type="module" src="${edgeUrl}/widget.js"></script></head>
<body><h1>A page on another origin</h1>
<dssd-chat edge="${edgeUrl}" temperature="0" gamma="4" max-tokens="${GREEDY_TOKENS}" top-p="1" codec="auto" height="620px" stats></dssd-chat>
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

test('widget: <dssd-chat> on a page of another origin works end to end', async ({
  context,
  edge,
  reference,
}, testInfo) => {
  const host = await hostServer(edge.url);
  try {
    const hostUrl = `http://127.0.0.1:${host.address().port}/`;
    const { page, errors } = await openPage(context, hostUrl);
    expect(new URL(hostUrl).origin).not.toBe(new URL(edge.url).origin);
    const frame = page.frameLocator('dssd-chat iframe');
    await waitConnected(frame);
    expect(await page.evaluate(() => window.events.ready)).toBe(1);
    // Typed into the widget: the host page receives the tokens and the finished answer as DOM events.
    const r = await ask(frame, PROMPT);
    expect(r.alert).toBeNull();
    expect(r.text).toBe(reference.text);
    await page.waitForFunction(() => window.events.answers.length === 1);
    const ev = await page.evaluate(() => window.events);
    expect(ev.answers[0].text).toBe(reference.text);
    expect(ev.answers[0].tokens).toEqual(reference.tokens);
    expect(ev.tokens.map((t) => t.text).join('')).toBe(reference.text);
    expect(ev.answers[0].stats.uplinkBytesPerToken).toBeGreaterThan(0);
    // Asked by the host page through the element's API.
    await page.evaluate(() => document.querySelector('dssd-chat').ask('Then'));
    await page.waitForFunction(() => window.events.answers.length === 2, null, { timeout: 60_000 });
    expect((await page.evaluate(() => window.events.answers[1].text)).length).toBeGreaterThan(0);
    expect(await page.evaluate(() => window.events.errors)).toEqual([]);
    await attachScreenshot(testInfo, page, 'widget');

    // The edge's headers: widget.js is loadable cross-origin; only allowed origins may frame embed.html.
    const w = await fetch(edge.url + '/widget.js', { headers: { origin: new URL(hostUrl).origin } });
    expect(w.headers.get('access-control-allow-origin')).toBe('*');
    const e = await fetch(edge.url + '/embed.html');
    expect(e.headers.get('content-security-policy')).toBe('frame-ancestors *');
    const i = await fetch(edge.url + '/');
    expect(i.headers.get('content-security-policy')).toBe("frame-ancestors 'self'");
    expect(errors).toEqual([]);
  } finally {
    host.close();
  }
});

test('widget: an edge with an origin allow-list refuses other framers', async ({ context, startEdge }) => {
  const listed = await startEdge({ allowedOrigins: ['https://example.org'] });
  const e = await fetch(listed.url + '/embed.html');
  expect(e.headers.get('content-security-policy')).toBe("frame-ancestors 'self' https://example.org");
  const ok = await fetch(listed.url + '/widget.js', { headers: { origin: 'https://example.org' } });
  expect(ok.headers.get('access-control-allow-origin')).toBe('https://example.org');
  const no = await fetch(listed.url + '/widget.js', { headers: { origin: 'https://evil.example' } });
  expect(no.headers.get('access-control-allow-origin')).toBeNull();
  // In the browser: a host page of an unlisted origin gets no widget frame content.
  const host = await hostServer(listed.url);
  try {
    const { page } = await openPage(context, `http://127.0.0.1:${host.address().port}/`);
    await page.waitForTimeout(1500);
    expect(await page.evaluate(() => window.events.ready)).toBe(0);
  } finally {
    host.close();
  }
});

test('chat page: the data channel dropping mid-answer reconnects and resumes; the greedy answer is unchanged', async ({
  context,
  startEdge,
  reference,
}) => {
  // A slower (emulated) target so the answer is still streaming when the channel is cut.
  const slow = await startEdge({ targetCost: { a: 20, b: 0 } });
  const { page, errors } = await openPage(context, slow.url + query({ ...GREEDY_DSSD, codec: 'auto' }));
  await waitConnected(page);
  await page.getByRole('textbox', { name: 'Prompt' }).fill(PROMPT);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('.answer[aria-busy="true"] .tok').nth(8).waitFor({ timeout: 30_000 });
  // The network goes away under the session: the edge's side of the data channel closes.
  const live = [...slow.sessions.values()];
  expect(live.length).toBe(1);
  live[0].transport.close();
  const answer = page.getByLabel('Answer', { exact: true }).last();
  await answer.and(page.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 60_000 });
  expect(await answer.getAttribute('data-done')).toBe('maxTokens');
  expect(await answer.textContent(), 'no token lost or duplicated').toBe(reference.text);
  expect(await page.getByRole('alert').isVisible()).toBe(false);
  const m = await fetch(slow.url + '/metrics').then((r) => r.text());
  expect(m, 'a second peer connection resumed the session').toMatch(/^dssd_sessions_total 2$/m);
  expect(errors).toEqual([]);
});

test('chat page: Stop ends an answer; the edge going away mid-answer gives a clear message, no stuck UI', async ({
  context,
  startEdge,
}, testInfo) => {
  // A slower (emulated) target so the answer is surely still streaming when the edge goes away.
  const doomed = await startEdge({ targetCost: { a: 25, b: 0 } });
  const { page, errors } = await openPage(
    context,
    doomed.url + query({ temperature: 1, seed: 3, gamma: 4, maxTokens: 400, mode: 'dssd' }),
  );
  await waitConnected(page);
  // Stop first: the answer ends as 'stopped', with no error, and the session stays usable.
  await page.getByRole('textbox', { name: 'Prompt' }).fill(PROMPT);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  await page.locator('.answer[aria-busy="true"] .tok').first().waitFor({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Stop' }).click();
  const first = page.getByLabel('Answer', { exact: true }).first();
  await first.and(page.locator('[aria-busy="false"]')).waitFor({ timeout: 30_000 });
  expect(await first.getAttribute('data-done')).toBe('stopped');
  expect(await page.getByRole('alert').isVisible()).toBe(false);

  await page.getByRole('textbox', { name: 'Prompt' }).fill('And');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const answer = page.getByLabel('Answer', { exact: true }).last();
  await answer.locator('.tok').first().waitFor({ timeout: 30_000 });
  await doomed.close();
  await answer.and(page.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 40_000 });
  const alert = page.getByRole('alert');
  await alert.waitFor();
  expect(await alert.textContent()).toMatch(/connection to the edge was lost/i);
  expect(await answer.getAttribute('data-done')).toBe('error');
  expect((await answer.textContent()).length, 'the text received so far stays').toBeGreaterThan(0);
  expect(await page.getByRole('button', { name: 'Send', exact: true }).isEnabled()).toBe(true);
  expect(await page.getByRole('button', { name: 'Stop' }).isEnabled()).toBe(false);
  await attachScreenshot(testInfo, page, 'edge-lost');
  // Sending again reports the unreachable edge instead of hanging.
  const r = await ask(page, 'again');
  expect(r.alert ?? '').toMatch(/cannot reach the edge/i);
  expect(errors).toEqual([]);
});

test('chat page: a refused session and a browser without WebRTC give clear messages', async ({
  context,
  edge,
  startEdge,
}) => {
  // Refused: γ 12 is within the device's own bound but beyond this edge's configured limit (8).
  const strict = await startEdge({ limits: { maxGamma: 8 } });
  const { page } = await openPage(context, strict.url + query({ gamma: 12, temperature: 0 }));
  const alert = page.getByRole('alert');
  await alert.waitFor({ timeout: 60_000 });
  expect(await alert.textContent()).toMatch(/refused the session \(BadSettings\)/);

  const bare = await context.newPage();
  await bare.addInitScript(() => {
    delete window.RTCPeerConnection;
    delete window.webkitRTCPeerConnection;
  });
  await bare.goto(edge.url + '/');
  const noRtc = bare.getByRole('alert');
  await noRtc.waitFor({ timeout: 30_000 });
  expect(await noRtc.textContent()).toMatch(/no WebRTC/);
  expect(await bare.getByRole('button', { name: 'Send', exact: true }).isEnabled()).toBe(true);
});
