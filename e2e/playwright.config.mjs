// `npx playwright test` from e2e/ (the workspace's `npm test`). Browsers come from Debian (apt), never from
// `playwright install`: Chromium through executablePath; Firefox ESR through Puppeteer inside firefox.test.mjs,
// because Playwright's own Firefox (BiDi, `moz-firefox`) needs a newer Firefox than Debian's ESR 140.
import { defineConfig } from '@playwright/test';
import { CHROMIUM, CHROMIUM_ARGS, WEBRTC_LOOPBACK_ARGS } from './chromium.mjs';

export default defineConfig({
  testDir: '.',
  // One worker: each worker starts its own edge and the machines have 2 cores.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  // One retry in CI: WebRTC reconnect timing on a loaded 2-core machine flaked once; a retried pass is reported as flaky.
  retries: process.env.CI ? 1 : 0,
  timeout: 120_000,
  outputDir: 'test-results',
  reporter: [['list'], ['html', { outputFolder: 'playwright-report', open: 'never' }]],
  use: {
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
  },
  projects: [
    {
      name: 'chromium',
      testMatch: [
        'web.test.mjs',
        'ux.test.mjs',
        'models-worker.test.mjs',
        'kernel-digest.test.mjs',
        'fleet.test.mjs',
        'webrtc-stacks.test.mjs',
        'standin.test.mjs',
      ],
      use: {
        browserName: 'chromium',
        viewport: { width: 1200, height: 800 },
        launchOptions: {
          executablePath: CHROMIUM,
          args: [...CHROMIUM_ARGS, ...WEBRTC_LOOPBACK_ARGS],
        },
      },
    },
    {
      // The WebGPU path on Chromium's software adapter (SwiftShader): --enable-unsafe-webgpu, and the GPU process
      // must not be disabled (no --disable-gpu).
      name: 'chromium-webgpu',
      testMatch: ['webgpu.test.mjs'],
      use: {
        browserName: 'chromium',
        viewport: { width: 1200, height: 800 },
        launchOptions: {
          executablePath: CHROMIUM,
          args: [
            ...CHROMIUM_ARGS.filter((a) => a !== '--disable-gpu'),
            '--enable-unsafe-webgpu',
            ...WEBRTC_LOOPBACK_ARGS,
          ],
        },
      },
    },
    { name: 'firefox', testMatch: ['firefox.test.mjs'] },
  ],
});
