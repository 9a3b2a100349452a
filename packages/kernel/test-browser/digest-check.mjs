// Node vs Chromium: processLogits must produce the same bits in both (it uses basic IEEE operations only).
// Bundles test/digest.ts (built to dist/test/digest.js) with esbuild, runs processDigest() in headless Chromium
// and compares it with Node's value and the pinned NODE_DIGEST. Needs a build first:
//   npx tsc -b packages/kernel && node packages/kernel/test-browser/digest-check.mjs
// Exit code 0 = identical, 1 = different, 2 = Chromium unavailable.
// For the @playwright/test e2e suite the same check is: bundle dist/test/digest.js as below, addScriptTag, then
//   expect(await page.evaluate(() => globalThis.kernelDigest.processDigest())).toBe(NODE_DIGEST).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const entry = fileURLToPath(new URL('../dist/test/digest.js', import.meta.url));
if (!existsSync(entry)) {
  console.error(`missing ${entry}: run npx tsc -b packages/kernel first`);
  process.exit(2);
}
if (!existsSync(CHROMIUM)) {
  console.error(`no Chromium at ${CHROMIUM} (set CHROMIUM=...)`);
  process.exit(2);
}

const { NODE_DIGEST, processDigest } = await import(entry);
const nodeDigest = processDigest();
const bundle = await build({
  entryPoints: [entry],
  bundle: true,
  format: 'iife',
  globalName: 'kernelDigest',
  platform: 'browser',
  write: false,
});
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
});
try {
  const page = await browser.newPage();
  await page.setContent('<!doctype html><title>kernel digest</title>');
  await page.addScriptTag({ content: bundle.outputFiles[0].text });
  const browserDigest = await page.evaluate(() => globalThis.kernelDigest.processDigest());
  const version = browser.version();
  console.log(
    `Node ${process.version}: ${nodeDigest}; Chromium ${version}: ${browserDigest}; pinned: ${NODE_DIGEST}`,
  );
  const ok = browserDigest === nodeDigest && nodeDigest === NODE_DIGEST;
  console.log(ok ? 'identical' : 'DIFFERENT');
  process.exitCode = ok ? 0 : 1;
} finally {
  await browser.close();
}
