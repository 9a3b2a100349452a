// The kernel's processing gives the same bits in Chromium as in Node: a digest of processLogits outputs over
// seeded inputs (every sampling mode, |V| up to 151,936), bundled for the page and compared with Node's.
import { test, expect } from '@playwright/test';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../packages/kernel/dist/test/digest.js', import.meta.url));

test('processLogits: Chromium computes the same bits as Node', async ({ page }) => {
  const { NODE_DIGEST, processDigest } = await import(entry);
  expect(processDigest()).toBe(NODE_DIGEST);
  const b = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'iife',
    globalName: 'kernelDigest',
    platform: 'browser',
    write: false,
  });
  await page.setContent('<!doctype html><title>digest</title>');
  await page.addScriptTag({ content: b.outputFiles[0].text });
  expect(await page.evaluate(() => globalThis.kernelDigest.processDigest())).toBe(NODE_DIGEST);
});
