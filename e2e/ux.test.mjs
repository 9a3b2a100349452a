// What a person meets on the chat page and in the widget (issue 19): settings validated per field and per key,
// the context meter and the full-context path, loading progress over every byte, readable statistics, token
// marks without hue, the compact themeable widget, and accessibility (axe-core in light and dark, live region,
// focus, touch targets). Real edge, real WebRTC, Debian's Chromium. `DSSD_SCREENSHOTS=1` also writes the
// README's screenshots to docs/img/.
import AxeBuilder from '@axe-core/playwright';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { GREEDY_DSSD, PROMPT, ROOT, expect, query, test } from './fixtures.mjs';

const log = (...a) => console.log('  [ux e2e]', ...a);

async function openPage(context, url, viewport) {
  const page = await context.newPage();
  if (viewport) await page.setViewportSize(viewport);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  return { page, errors };
}

async function waitConnected(root) {
  await root.getByRole('status').filter({ hasText: 'Connected to the edge' }).waitFor({ timeout: 60_000 });
}

const sendButton = (root) => root.getByRole('button', { name: 'Send', exact: true });
const lastAnswer = (root) => root.getByLabel('Answer', { exact: true }).last();

/** Sends a prompt and waits for the answer (count: how many answers exist once it is done). */
async function ask(root, prompt) {
  const before = await root.getByLabel('Answer', { exact: true }).count();
  await root.getByRole('textbox', { name: 'Prompt' }).fill(prompt);
  await sendButton(root).click();
  const answer = root.getByLabel('Answer', { exact: true }).nth(before);
  await answer.and(root.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 60_000 });
  const json = await root
    .locator('dl.stats')
    .getAttribute('data-json', { timeout: 1000 })
    .catch(() => null);
  return { answer, stats: json ? JSON.parse(json) : null, done: await answer.getAttribute('data-done') };
}

/** axe-core on the page in light and dark schemes: no violations. */
async function expectAccessible(page, what) {
  for (const colorScheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme });
    const r = await new AxeBuilder({ page }).analyze();
    const v = r.violations.map((x) => `${x.id}: ${x.nodes.map((n) => n.target.join(' ')).join(', ')}`);
    expect(v, `${what}, ${colorScheme}`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

/** A page on another origin (127.0.0.1 vs the edge's localhost) with `body` around the widget script. */
function hostServer(edgeUrl, body) {
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>host page</title>
<script type="module" src="${edgeUrl}/widget.js"></script></head>
<body><h1>A page on another origin</h1>
<script>
  window.events = { ready: 0, answers: [], errors: [] };
  document.addEventListener('dssd-ready', () => window.events.ready++);
  document.addEventListener('dssd-answer', (e) => window.events.answers.push(e.detail));
  document.addEventListener('dssd-error', (e) => window.events.errors.push(e.detail));
</script>${body}</body></html>`;
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  return new Promise((ok) =>
    server.listen(0, '127.0.0.1', () => ok({ server, url: `http://127.0.0.1:${server.address().port}/` })),
  );
}

test('settings: an invalid field is marked and blocks Send; the answer runs on exactly the settings shown', async ({
  context,
  edge,
}) => {
  const { page, errors } = await openPage(context, edge.url + query({ ...GREEDY_DSSD, maxTokens: 12 }));
  await waitConnected(page);
  await page.getByText('Settings', { exact: true }).click();
  const topP = page.getByLabel('top-p', { exact: true });
  await topP.fill('2');
  await expect(topP).toHaveAttribute('aria-invalid', 'true');
  await expect(page.locator('#err-topP')).toHaveText('top-p must be a number in (0, 1], got "2"');
  await expect(sendButton(page)).toBeDisabled();
  await expect(page.getByText('Send is blocked: fix top-p in the settings.')).toBeVisible();
  // Other fields still apply while one is invalid, and each is checked on its own.
  await page.getByLabel('mode', { exact: true }).selectOption('ar');
  await page.getByLabel('max new tokens').fill('0');
  await expect(page.getByLabel('max new tokens')).toHaveAttribute('aria-invalid', 'true');
  await expect(page.getByText('Send is blocked: fix top-p, max new tokens in the settings.')).toBeVisible();
  // A host (or script) asking while a field is invalid gets an error, not an answer on other settings.
  await page.getByRole('textbox', { name: 'Prompt' }).fill(PROMPT);
  await page.evaluate(() => window.dssdApp.ask('The jury said'));
  await expect(page.getByRole('alert')).toContainText('Send is blocked');
  expect(await page.getByLabel('Answer', { exact: true }).count()).toBe(0);
  // Fixed: Send works, and the answer ran as the form says (ar, 5 tokens), recorded under the answer.
  await topP.fill('1');
  await page.getByLabel('max new tokens').fill('5');
  await expect(topP).not.toHaveAttribute('aria-invalid');
  await expect(sendButton(page)).toBeEnabled();
  const r = await ask(page, PROMPT);
  expect(r.stats.mode).toBe('ar');
  expect(r.stats.tokens).toBe(5);
  await expect(page.locator('.answer-meta').last()).toContainText('ar · temperature 0');
  expect(errors).toEqual([]);
});

test('settings: a URL with bad and unknown keys applies the rest and names each bad one; a change mid-conversation shows a divider', async ({
  context,
  edge,
}) => {
  const { page, errors } = await openPage(
    context,
    edge.url + '/?gamma=999&temperature=0&mode=ar&maxTokens=6&tmperature=1',
  );
  const alert = page.getByRole('alert');
  await expect(alert).toContainText('gamma: must be an integer in [1, 16] or auto, got "999"');
  await expect(alert).toContainText("tmperature: unknown setting 'tmperature'");
  await expect(page.getByLabel('mode', { exact: true })).toHaveValue('ar');
  await expect(page.getByLabel('temperature', { exact: true })).toHaveValue('0');
  await expect(page.getByLabel('γ (draft length)')).toHaveValue('4');
  await waitConnected(page);
  const r = await ask(page, PROMPT);
  expect([r.stats.mode, r.stats.tokens]).toEqual(['ar', 6]);
  await expect(page.getByRole('alert')).toBeHidden();

  // Changing a setting restarts the session: a divider says so and each answer records its settings.
  await page.getByText('Settings', { exact: true }).click();
  await page.getByLabel('mode', { exact: true }).selectOption('dssd');
  const r2 = await ask(page, 'Then');
  expect(r2.stats.mode).toBe('dssd');
  const divider = page.getByRole('separator');
  await expect(divider).toHaveText(/^Settings changed: a new conversation starts here \(dssd · γ 4/);
  // Order: first turn, divider, second turn.
  const order = await page
    .locator('.transcript > *')
    .evaluateAll((els) => els.map((e) => e.className.split(' ')[0]));
  expect(order).toEqual(['turn', 'divider', 'turn']);
  await expect(page.locator('.answer-meta').first()).toContainText(/^ar · temperature 0/);
  await expect(page.locator('.answer-meta').last()).toContainText(
    /^dssd · γ 4 · codec candidates · temperature 0/,
  );
  expect(errors).toEqual([]);
});

test('context: the meter counts the conversation; a full context offers a new conversation or dropping the oldest turns, re-prefilled on both sides', async ({
  context,
  edge,
}) => {
  test.setTimeout(240_000); // several page loads and answers on a shared 2-core machine
  const { page, errors } = await openPage(context, edge.url + query({ ...GREEDY_DSSD, maxTokens: 200 }));
  await waitConnected(page);
  const ctx = page.locator('.context');
  await expect(ctx).toContainText('0 / 512 tokens');
  const used = async () => Number(await ctx.getAttribute('data-used'));
  const first = await ask(page, PROMPT);
  const afterFirst = await used();
  expect(afterFirst).toBeGreaterThan(first.stats.tokens);
  await expect(ctx).toContainText(`${afterFirst} / 512 tokens`);
  // Fill the context; the answer that does not fit is capped to the room left.
  let capped = false;
  for (let i = 0; i < 6 && !(await page.locator('.context-full').isVisible()); i++) {
    await page.getByRole('textbox', { name: 'Prompt' }).fill('Then the');
    await sendButton(page).click();
    await page.waitForFunction(
      () =>
        !document.querySelector('.answer[aria-busy="true"]') &&
        (document.querySelector('.context-full:not([hidden])') ||
          document.querySelectorAll('.answer').length > 0),
    );
    await page.waitForFunction(() => !document.querySelector('.answer[aria-busy="true"]'));
    if (
      /capped at \d+ by the room left/.test((await page.locator('.answer-meta').last().textContent()) ?? '')
    )
      capped = true;
  }
  await expect(page.locator('.context-full')).toBeVisible();
  expect(capped, 'an answer was capped to the room left').toBe(true);
  await expect(page.locator('.context-note')).toContainText('The context is full');
  expect(await used()).toBeLessThanOrEqual(512);
  // The held prompt stays in the box; one click drops the oldest turns and sends it.
  await expect(page.getByRole('textbox', { name: 'Prompt' })).toHaveValue('Then the');
  const turnsBefore = await page.locator('.turn').count();
  await page.getByRole('button', { name: 'Drop oldest turns' }).click();
  await expect(page.getByRole('separator').first()).toContainText('oldest turn');
  await page.waitForFunction(() => !document.querySelector('.answer[aria-busy="true"]'));
  const last = lastAnswer(page);
  await expect(last).toHaveAttribute('data-done', /maxTokens|eos|contextEnd/);
  expect(await page.locator('.turn').count()).toBeLessThan(turnsBefore + 1);
  expect(await used()).toBeLessThan(512);
  // Both sides were prefilled again from position 0: the greedy answer equals edge-only greedy decoding of
  // exactly the kept history plus the prompt.
  const { history, answerLen } = await page.evaluate(() => {
    const d = window.dssdApp.device;
    return {
      history: d.session.history.slice(),
      answerLen: JSON.parse(document.querySelector('dl.stats').dataset.json).tokens,
    };
  });
  const { connectNodeDevice } = await import('@dssd/edge-node');
  const dev = await connectNodeDevice({
    edge: edge.url,
    settings: { mode: 'ar', sampling: { temperature: 0, topK: 0, topP: 1 } },
  });
  try {
    const prompt = history.slice(0, history.length - answerLen);
    const ref = await dev.session.generate(prompt, { maxNewTokens: answerLen });
    expect(history.slice(prompt.length)).toEqual(ref.tokens);
  } finally {
    dev.close();
  }
  log(`context filled at ${turnsBefore} turns; after dropping: ${await used()} / 512 tokens`);
  // New conversation empties the meter.
  await page.getByRole('button', { name: 'New conversation' }).first().click();
  await expect(ctx).toContainText('0 / 512 tokens');
  expect(errors).toEqual([]);
});

test('loading: the bar covers model, wasm and tokenizer bytes and reaches 100% only once the page can generate', async ({
  context,
  edge,
}) => {
  const page = await context.newPage();
  const wasmRequests = [];
  context.on('request', (r) => {
    if (r.url().endsWith('.wasm')) wasmRequests.push(r.url());
  });
  await page.addInitScript(() => {
    window.progressLog = [];
    const seen = () => {
      const p = document.querySelector('progress');
      const s = document.querySelector('[role="status"]')?.textContent ?? '';
      if (!p) return;
      window.progressLog.push({
        value: p.value,
        text: document.querySelector('.progress-text')?.textContent ?? '',
        total: Number(p.parentElement?.dataset.totalBytes ?? 0),
        phase: p.parentElement?.dataset.phase ?? '',
        connected: s.includes('Connected to the edge'),
      });
    };
    new MutationObserver(seen).observe(document, { subtree: true, attributes: true, childList: true });
  });
  await page.goto(edge.url + query({ ...GREEDY_DSSD, maxTokens: 8 }));
  await waitConnected(page);
  await expect(page.locator('.progress')).toBeHidden();
  const logged = await page.evaluate(() => window.progressLog);
  const full = logged.findIndex((e) => e.value >= 1);
  expect(full).toBeGreaterThan(0);
  // 100% only once joined to the edge (the status says so first), never during download, compile or warm-up.
  expect(logged.filter((e) => e.value >= 1).every((e) => e.connected && e.phase === 'done')).toBe(true);
  expect(logged.filter((e) => !e.connected).every((e) => e.value < 1)).toBe(true);
  const phases = [...new Set(logged.map((e) => e.phase).filter(Boolean))];
  expect(phases).toEqual(expect.arrayContaining(['download', 'init', 'warmup', 'join', 'done']));
  // Every byte: the 14 MB wasm, the 2 MB draft and the tokenizer.
  const total = Math.max(...logged.map((e) => e.total));
  expect(total).toBeGreaterThan(16e6);
  expect(logged.some((e) => /\d+\.\d \/ \d+\.\d MB \(\d+%\)/.test(e.text))).toBe(true);
  // Never backwards.
  for (let i = 1; i < logged.length; i++) expect(logged[i].value).toBeGreaterThanOrEqual(logged[i - 1].value);
  // The wasm is fetched once (the Worker hands ORT the bytes it counted).
  expect(wasmRequests.length).toBeLessThanOrEqual(1);
  log(
    `loading: ${(total / 1e6).toFixed(1)} MB counted, ${logged.length} updates, wasm requests ${wasmRequests.length}`,
  );
  const r = await ask(page, PROMPT);
  expect(r.stats.tokens).toBe(8);
});

test('statistics and token marks: a headline, a tooltip on every figure, a line per answer; origins differ by underline style; the marks can be turned off', async ({
  context,
  edge,
}) => {
  const { page, errors } = await openPage(context, edge.url + query({ ...GREEDY_DSSD, maxTokens: 32 }));
  // On arrival: what the models are, links to the README and the model card, example prompts that fit them.
  await expect(page.locator('.intro')).toContainText('it continues text, it does not answer questions');
  for (const name of ['README', 'model card']) {
    const href = await page.getByRole('link', { name, exact: true }).getAttribute('href');
    const r = await fetch(new URL(href, edge.url + '/'));
    expect(r.status, name).toBe(200);
    expect(await r.text()).toMatch(/^# /);
  }
  await page.getByRole('button', { name: 'The jury said' }).click();
  await expect(page.getByRole('textbox', { name: 'Prompt' })).toHaveValue('The jury said');
  await expect(page.getByRole('textbox', { name: 'Prompt' })).toBeFocused();
  await waitConnected(page);
  await ask(page, PROMPT);
  await expect(page.locator('.headline')).toHaveText(
    /^\d+\.\d tokens per round trip · \d+ B up per token · \d\.\d\d edge passes per token$/,
  );
  const figures = page.locator('[data-stat], .stats dt, .headline span, .answer-meta span');
  expect(await figures.count()).toBeGreaterThan(15);
  for (const title of await figures.evaluateAll((els) => els.map((e) => e.getAttribute('title') ?? '')))
    expect(title.length, 'tooltip').toBeGreaterThan(20);
  await expect(page.locator('.answer-meta').last()).toContainText(
    /tokens per round trip · \d+ B up per token/,
  );
  await expect(page.locator('.why')).toContainText('edge is close by');
  // Underline styles: one per origin, so the marks read without colour.
  const styles = await page.evaluate(() =>
    Object.fromEntries(
      ['draft', 'resampled', 'bonus', 'edge'].map((o) => [
        o,
        getComputedStyle(document.querySelector(`.legend .tok-${o}`)).textDecorationStyle,
      ]),
    ),
  );
  expect(styles).toEqual({ draft: 'solid', resampled: 'wavy', bonus: 'double', edge: 'dotted' });
  await expect(page.getByText(/Each piece of an answer is marked by where it came from/)).toBeVisible();
  const draftTok = page.locator('.answer .tok-draft').first();
  const marked = await draftTok.evaluate((e) => getComputedStyle(e).textDecorationLine);
  expect(marked).toBe('underline');
  await page.getByLabel('Mark tokens by origin').uncheck();
  const plain = await draftTok.evaluate((e) => {
    const s = getComputedStyle(e);
    const a = getComputedStyle(e.closest('.answer'));
    return { line: s.textDecorationLine, same: s.color === a.color, bg: s.backgroundColor };
  });
  expect(plain).toEqual({ line: 'none', same: true, bg: 'rgba(0, 0, 0, 0)' });
  await page.getByLabel('Mark tokens by origin').check();
  expect(await draftTok.evaluate((e) => getComputedStyle(e).textDecorationLine)).toBe('underline');
  expect(errors).toEqual([]);
});

test('accessibility: answers in a live region, focus back after Stop, a failed turn keeps its prompt, 44 px targets on a phone', async ({
  context,
  startEdge,
}) => {
  const slow = await startEdge({ targetCost: { a: 20, b: 0 } });
  const { page, errors } = await openPage(
    context,
    slow.url + query({ temperature: 1, seed: 3, gamma: 4, maxTokens: 400, mode: 'dssd' }),
    { width: 390, height: 844 },
  );
  await waitConnected(page);
  // Touch targets: every visible button and form control is at least 44 px tall.
  await page.getByText('Settings', { exact: true }).click();
  const small = await page.evaluate(() =>
    [...document.querySelectorAll('button, select, input, summary, a')]
      .filter((e) => e.checkVisibility())
      .map((e) => [e.textContent?.trim() || e.getAttribute('name') || e.id, e.getBoundingClientRect().height])
      .filter(([, hgt]) => hgt < 44),
  );
  // Checkboxes sit in a 44 px label row; the number inputs and links are checked like the buttons.
  expect(small.filter(([n]) => n !== 'colours')).toEqual([]);
  await page.getByText('Settings', { exact: true }).click();

  const prompt = page.getByRole('textbox', { name: 'Prompt' });
  await prompt.fill(PROMPT);
  await sendButton(page).click();
  const answer = lastAnswer(page);
  expect(
    await answer.evaluate((e) => e.closest('[aria-live]')?.getAttribute('aria-live')),
    'the answer sits in a polite live region',
  ).toBe('polite');
  expect(await answer.evaluate((e) => e.closest('[role="log"]') !== null)).toBe(true);
  await page.locator('.answer[aria-busy="true"] .tok').first().waitFor({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Stop' }).focus();
  await page.keyboard.press('Enter');
  await expect(answer).toHaveAttribute('data-done', 'stopped');
  await expect(prompt).toBeFocused();
  // No nested articles.
  expect(await page.locator('article article, article [role="article"]').count()).toBe(0);

  // The edge goes away: the failed turn reports it and keeps the prompt text.
  await slow.close();
  await prompt.fill('keep this prompt');
  await sendButton(page).click();
  await expect(page.getByRole('alert')).toContainText(
    /connection to the edge was lost|cannot reach the edge/i,
  );
  await expect(prompt).toHaveValue('keep this prompt');
  expect(errors).toEqual([]);
});

test('accessibility: axe-core finds no violation on the chat page and embed.html, light and dark', async ({
  context,
  edge,
}) => {
  test.setTimeout(300_000); // axe takes tens of seconds per run on a loaded 2-core machine
  const { page } = await openPage(context, edge.url + query({ ...GREEDY_DSSD, maxTokens: 24 }));
  await waitConnected(page);
  await ask(page, PROMPT);
  await page.getByText('Settings', { exact: true }).click();
  await page.getByLabel('top-p', { exact: true }).fill('2'); // an invalid field, marked
  await expectAccessible(page, 'chat page');
  const embed = await openPage(context, edge.url + '/embed.html' + query({ ...GREEDY_DSSD, maxTokens: 12 }));
  await waitConnected(embed.page);
  await ask(embed.page, PROMPT);
  await expectAccessible(embed.page, 'embed.html');
  expect(await embed.page.getByRole('heading', { level: 1 }).count()).toBe(1);
  await embed.page.close();
  const full = await openPage(context, edge.url + '/embed.html?ui=stats,settings');
  await waitConnected(full.page);
  await expectAccessible(full.page, 'embed.html with stats and settings');
});

test('widget: compact and usable at 300 px, themeable; a bad or unknown attribute reaches the host as dssd-error', async ({
  context,
  edge,
}) => {
  test.setTimeout(240_000); // several page loads and answers on a shared 2-core machine
  const host = await hostServer(
    edge.url,
    `<style>dssd-chat { --dssd-accent: rgb(200, 0, 0); }</style>
<dssd-chat edge="${edge.url}" temperature="0" top-p="2" max-tokens="6" max-token="9" height="300px" class="w"></dssd-chat>`,
  );
  try {
    const { page, errors } = await openPage(context, host.url);
    await page.waitForFunction(() => window.events.errors.length > 0);
    const ev = await page.evaluate(() => window.events.errors);
    expect(ev[0].code).toBe('BadSetting');
    expect(ev[0].message).toContain('top-p must be a number in (0, 1], got "2"');
    expect(ev[0].message).toContain("unknown attribute 'max-token'");
    expect(ev[0].message).not.toContain('class');
    // The valid attributes still apply.
    const src = await page.locator('dssd-chat iframe').getAttribute('src');
    expect(new URL(src).searchParams.get('temperature')).toBe('0');
    expect(new URL(src).searchParams.has('topP')).toBe(false);
    const frame = page.frameLocator('dssd-chat iframe');
    await waitConnected(frame);
    // Compact: no statistics or settings unless asked; Send inside the 300 px frame.
    expect(await frame.locator('aside, dl.stats, details.settings').count()).toBe(0);
    const box = await page.locator('dssd-chat iframe').boundingBox();
    const send = await frame.getByRole('button', { name: 'Send', exact: true }).boundingBox();
    expect(box.height).toBeCloseTo(300, 0);
    expect(send.y + send.height, 'Send inside the frame').toBeLessThanOrEqual(box.y + box.height);
    expect(send.y).toBeGreaterThanOrEqual(box.y);
    // The host's theme: its accent colours the Send button inside the frame.
    expect(
      await frame
        .getByRole('button', { name: 'Send', exact: true })
        .evaluate((e) => getComputedStyle(e).backgroundColor),
    ).toBe('rgb(200, 0, 0)');
    const r = await ask(frame, PROMPT);
    expect(r.done).toBe('maxTokens');
    await page.waitForFunction(() => window.events.answers.length === 1);
    // Still usable after several answers: the answers scroll, the composer stays.
    await ask(frame, 'Then');
    await ask(frame, 'And');
    const send2 = await frame.getByRole('button', { name: 'Send', exact: true }).boundingBox();
    expect(send2.y + send2.height).toBeLessThanOrEqual(box.y + box.height);
    // Panels on request.
    const url = await page.evaluate(() => {
      const el = document.createElement('dssd-chat');
      el.setAttribute('stats', '');
      el.setAttribute('settings', '');
      el.setAttribute('theme', 'dark');
      return el.embedUrl;
    });
    expect(new URL(url).searchParams.get('ui')).toBe('stats,settings');
    expect(new URL(url).searchParams.get('scheme')).toBe('dark');
    expect(errors).toEqual([]);
  } finally {
    host.server.close();
  }
});

test('widget: a refused origin gets the fallback content and a dssd-error', async ({
  browser,
  edge,
  startEdge,
}) => {
  // Refused: an edge that only lets https://example.org frame it. With widget.js from elsewhere (here: a
  // public edge), the element sees its frame refused: it shows its children (the fallback) and raises
  // dssd-error. With widget.js from the refusing edge itself, CORS stops the script: the element never
  // upgrades, so its children show as they are, and the script's error event is the host's signal.
  const listed = await startEdge({ allowedOrigins: ['https://example.org'] });
  const fallback = `<p>Chat unavailable: <a href="${listed.url}">open it here</a>.</p>`;
  for (const [widgetFrom, expected] of [
    [edge.url, 'EmbedRefused'],
    [listed.url, 'ScriptRefused'],
  ]) {
    const refused = await hostServer(
      widgetFrom,
      `<dssd-chat edge="${listed.url}">${fallback}</dssd-chat>
<script>document.querySelector('script[type=module]').addEventListener('error', () =>
  window.events.errors.push({ code: 'ScriptRefused' }));</script>`,
    );
    // A context of its own, closed below: the refused frame leaves a connection in the context's socket pool
    // that would keep the refusing edge's close() waiting.
    const own = await browser.newContext();
    const { page } = await openPage(own, refused.url);
    try {
      await page.waitForFunction(() => window.events.errors.length > 0, null, { timeout: 20_000 });
      const ev = await page.evaluate(() => window.events);
      expect(ev.ready).toBe(0);
      expect(ev.errors[0].code).toBe(expected);
      if (expected === 'EmbedRefused') expect(ev.errors[0].message).toContain(listed.url);
      await expect(page.getByText('Chat unavailable:')).toBeVisible();
      expect(await page.locator('dssd-chat iframe').count()).toBe(0);
    } finally {
      await own.close();
      refused.server.close();
    }
  }
});

test('screenshots: the page (desktop, phone) and the widget', async ({ context, edge }, testInfo) => {
  const write = process.env.DSSD_SCREENSHOTS === '1';
  const dir = join(ROOT, 'docs/img');
  if (write) mkdirSync(dir, { recursive: true });
  const shot = async (page, name, opts = {}) => {
    test.setTimeout(240_000); // several page loads and answers on a shared 2-core machine
    const body = await page.screenshot(opts);
    await testInfo.attach(name, { body, contentType: 'image/png' });
    if (write) await page.screenshot({ ...opts, path: join(dir, `${name}.png`) });
  };
  const settings = { temperature: 0, gamma: 4, maxTokens: 40, topK: 0, topP: 1, mode: 'dssd' };
  const { page } = await openPage(context, edge.url + query(settings), { width: 1200, height: 900 });
  await waitConnected(page);
  await ask(page, PROMPT);
  await ask(page, 'In the morning the');
  await page.getByText('Settings', { exact: true }).click();
  await shot(page, 'chat-desktop', { fullPage: true });
  const phone = await openPage(context, edge.url + query(settings), { width: 390, height: 844 });
  await waitConnected(phone.page);
  await ask(phone.page, PROMPT);
  await shot(phone.page, 'chat-phone');
  await phone.page.emulateMedia({ colorScheme: 'dark' });
  await shot(phone.page, 'chat-phone-dark');
  const host = await hostServer(
    edge.url,
    `<p>The widget, compact by default, 360 px high:</p>
<dssd-chat edge="${edge.url}" temperature="0" max-tokens="40" height="360px" style="max-width: 36rem"></dssd-chat>`,
  );
  try {
    const w = await openPage(context, host.url, { width: 800, height: 520 });
    const frame = w.page.frameLocator('dssd-chat iframe');
    await waitConnected(frame);
    await ask(frame, PROMPT);
    await shot(w.page, 'widget');
  } finally {
    host.server.close();
  }
  if (write) log(`screenshots written to ${dir}`);
});
