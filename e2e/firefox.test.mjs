// The chat flow in Debian's Firefox ESR: the page joins a real edge over WebRTC and the greedy answer equals
// edge-only decoding. Playwright's Firefox support (BiDi, `moz-firefox`) needs Firefox ≥ 146, newer than Debian's
// ESR 140, so this spec drives Firefox itself with Puppeteer over WebDriver BiDi inside the Playwright runner.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { FIREFOX, FIREFOX_WEBRTC_LOOPBACK_PREFS } from './chromium.mjs';
import { GREEDY_DSSD, PROMPT, expect, query, test as base } from './fixtures.mjs';

const test = base.extend({
  /** Firefox ESR through Puppeteer (WebDriver BiDi), a fresh profile per worker. */
  firefox: [
    async ({}, use) => {
      const profile = mkdtempSync(join(tmpdir(), 'dssd-ff-prof-'));
      const browser = await puppeteer.launch({
        browser: 'firefox',
        protocol: 'webDriverBiDi',
        executablePath: FIREFOX,
        headless: true,
        userDataDir: profile,
        extraPrefsFirefox: FIREFOX_WEBRTC_LOOPBACK_PREFS,
      });
      await use(browser);
      await browser.close();
      rmSync(profile, { recursive: true, force: true });
    },
    { scope: 'worker', timeout: 60_000 },
  ],
});

/** Polls `fn` in the page until it returns a truthy value; Puppeteer's waitForFunction over BiDi. */
function until(page, fn, arg, timeout = 60_000) {
  return page.waitForFunction(fn, { timeout, polling: 100 }, arg);
}

test('firefox-esr chat page: greedy DSSD text equals the edge-only greedy text', async ({
  firefox,
  edge,
  reference,
}, testInfo) => {
  const page = await firefox.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  try {
    await page.goto(edge.url + query({ ...GREEDY_DSSD, codec: 'candidates' }));
    // Joined: the draft loaded in the worker and the data channel to the edge is open.
    await until(page, () =>
      document.querySelector('[role="status"]')?.textContent?.includes('Connected to the edge'),
    );
    await page.type('#prompt', PROMPT);
    await page.evaluate(() =>
      [...document.querySelectorAll('button')].find((b) => b.textContent?.trim() === 'Send')?.click(),
    );
    await until(page, () => {
      const a = [...document.querySelectorAll('[aria-label="Answer"]')].at(-1);
      return a?.getAttribute('aria-busy') === 'false';
    });
    const r = await page.evaluate(() => {
      const a = [...document.querySelectorAll('[aria-label="Answer"]')].at(-1);
      const alert = document.querySelector('[role="alert"]');
      return {
        text: a.textContent,
        done: a.getAttribute('data-done'),
        alert: alert && alert.checkVisibility() ? alert.textContent : null,
        stats: JSON.parse(document.querySelector('dl.stats')?.getAttribute('data-json') ?? 'null'),
        ua: navigator.userAgent,
      };
    });
    expect(r.ua).toMatch(/Firefox\//);
    expect(r.alert).toBeNull();
    expect(r.done).toBe('maxTokens');
    expect(r.text).toBe(reference.text);
    expect(r.stats.tokens).toBe(reference.tokens.length);
    expect(r.stats.uplinkBytesPerToken).toBeGreaterThan(0);
    console.log(
      `  [firefox e2e] ${r.ua.match(/Firefox\/[\d.]+/)[0]}: ${r.stats.tokens} tokens, ` +
        `${r.stats.tokensPerSecond.toFixed(1)} tokens/s, acceptance ${r.stats.acceptanceRate.toFixed(3)}`,
    );
    expect(errors).toEqual([]);
  } catch (e) {
    // Playwright's own screenshot-on-failure only sees its browsers; keep Firefox's page too.
    const shot = await page.screenshot({ fullPage: true }).catch(() => null);
    if (shot) await testInfo.attach('firefox-failure', { body: shot, contentType: 'image/png' });
    throw e;
  } finally {
    await page.close();
  }
});
