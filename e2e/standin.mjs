// The Qwen3-vocabulary stand-in pair (|V| = 151,936; `npm run models:standin`, not committed) for the browser
// tests: an edge serving its target and one of its drafts to the page, and the edge-only greedy reference of a
// chat conversation computed from Node through the same protocol and the same chat template.
import { test as base, expect } from './fixtures.mjs';

const nodeModels = await import('@dssd/models/node');
export const { QWEN_STANDIN_DIRS } = nodeModels;
/** Why the pair is not here, or null. .ci/run generates it and sets DSSD_REQUIRE_STANDIN: CI fails, never skips. */
export const STANDIN_MISSING = nodeModels.qwenStandinMissing();
if (STANDIN_MISSING && process.env.DSSD_REQUIRE_STANDIN) throw new Error(STANDIN_MISSING);

const GREEDY = { temperature: 0, topK: 0, topP: 1 };

export const test = base.extend({
  /** { target, draft }: the stand-in's target and (fp16) draft, loaded once per worker. */
  standin: [
    async ({}, use) => {
      const [target, draft] = await Promise.all([
        nodeModels.loadNodeModel(QWEN_STANDIN_DIRS.target),
        nodeModels.loadNodeModel(QWEN_STANDIN_DIRS.draft),
      ]);
      await use({ target, draft });
      await Promise.all([target.dispose(), draft.dispose()]);
    },
    { scope: 'worker', timeout: 120_000 },
  ],
  /** Starts an edge on the stand-in target serving `draftDir` to the page; closed after the test. */
  standinEdge: async ({ standin }, use) => {
    const { EdgeNode, Logger } = await import('@dssd/edge-node');
    const started = [];
    await use(async (draftDir) => {
      const e = await EdgeNode.start({ port: 0, log: new Logger('silent'), model: standin.target, draftDir });
      started.push(e);
      return e;
    });
    for (const e of started) await e.close().catch(() => {});
  },
});

/**
 * Edge-only greedy decoding of a chat (one user turn per prompt, the model's template, caches reused as the page
 * and `dssd generate --chat` do): per turn the answer's tokens and how many tokens were fed and kept.
 */
export async function arChat(edgeUrl, draft, prompts, maxNewTokens) {
  const { connectNodeDevice } = await import('@dssd/edge-node');
  const { ChatConversation } = await import('@dssd/models');
  const dev = await connectNodeDevice({ edge: edgeUrl, draft, settings: { mode: 'ar', sampling: GREEDY } });
  try {
    const conv = new ChatConversation(draft.chatTemplate, draft.tokenizer);
    const turns = [];
    for (const p of prompts) {
      const held = dev.session.history.length;
      const { keep, feed } = conv.user(p, dev.session.history);
      if (keep < held) dev.session.rewind(keep);
      const r = await dev.session.generate(feed, { maxNewTokens });
      conv.assistant(dev.session.history.slice(keep + feed.length));
      turns.push({ tokens: r.tokens, done: r.done, prefilled: feed.length, reused: keep });
    }
    return turns;
  } finally {
    dev.close();
  }
}

export async function waitConnected(page) {
  await page.getByRole('status').filter({ hasText: 'Connected to the edge' }).waitFor({ timeout: 90_000 });
}

/** Sends a prompt in the page and waits for its answer: tokens, prefill figures, alert text. */
export async function askPage(page, prompt) {
  await page.getByRole('textbox', { name: 'Prompt' }).fill(prompt);
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const answer = page.getByLabel('Answer', { exact: true }).last();
  await answer.and(page.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 90_000 });
  const alert = page.getByRole('alert');
  const attr = (k) => answer.getAttribute(k);
  const tokens = await attr('data-tokens');
  return {
    tokens: tokens ? tokens.split(',').map(Number) : [],
    done: await attr('data-done'),
    prefilled: Number(await attr('data-prefilled')),
    reused: Number(await attr('data-reused')),
    alert: (await alert.isVisible()) ? await alert.textContent() : null,
    stats: JSON.parse((await page.locator('dl.stats').getAttribute('data-json')) ?? 'null'),
  };
}

/** Float32 rows [n, V] of a numpy reference file next to the stand-in pair, cut to `width` columns. */
export async function referenceRows(name, width) {
  const { readFileSync } = await import('node:fs');
  const ref = JSON.parse(readFileSync(QWEN_STANDIN_DIRS.root + 'reference.json', 'utf8'));
  const buf = readFileSync(QWEN_STANDIN_DIRS.root + ref.models[name]);
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const rows = Array.from({ length: ref.ids.length }, (_, i) =>
    all.subarray(i * ref.rows, i * ref.rows + width),
  );
  return { ids: ref.ids, rows };
}

export { expect };
