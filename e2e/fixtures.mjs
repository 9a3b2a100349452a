// Fixtures shared by the e2e specs: a real edge (edge-node) per Playwright worker, and the edge-only greedy
// reference answer the chat tests compare against, computed from Node through the same protocol.
import { test as base, expect } from '@playwright/test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const PROMPT = 'The jury said';
export const GREEDY_TOKENS = 48;

/** `?k=v&…` from an object, values stringified. */
export function query(o) {
  return '?' + new URLSearchParams(Object.entries(o).map(([k, v]) => [k, String(v)])).toString();
}

/** The chat page's query for greedy DSSD with γ 4: its answer must equal the edge-only reference. */
export const GREEDY_DSSD = {
  temperature: 0,
  gamma: 4,
  maxTokens: GREEDY_TOKENS,
  topK: 0,
  topP: 1,
  mode: 'dssd',
};

export const test = base.extend({
  // One edge per worker: loading the target model takes seconds, and every spec of a worker can share it.
  edge: [
    async ({}, use) => {
      if (!existsSync(join(ROOT, 'web/dist/app.js')))
        throw new Error('web/dist is not built: run `npm run build` at the repository root first');
      const { EdgeNode, Logger } = await import('@dssd/edge-node');
      const edge = await EdgeNode.start({ port: 0, log: new Logger('silent') });
      await use(edge);
      await edge.close();
    },
    { scope: 'worker', timeout: 120_000 },
  ],
  /** { ids, tokens, text }: greedy edge-only (`ar`) decoding of PROMPT, GREEDY_TOKENS tokens. */
  reference: [
    async ({ edge }, use) => {
      const { connectNodeDevice } = await import('@dssd/edge-node');
      const dev = await connectNodeDevice({
        edge: edge.url,
        settings: { mode: 'ar', sampling: { temperature: 0, topK: 0, topP: 1 } },
      });
      let ref;
      try {
        const ids = dev.draft.tokenizer.encode(PROMPT);
        const r = await dev.session.generate(ids, { maxNewTokens: GREEDY_TOKENS });
        ref = { ids, tokens: r.tokens, text: dev.draft.tokenizer.decode(r.tokens) };
      } finally {
        dev.close();
      }
      await use(ref);
    },
    { scope: 'worker', timeout: 120_000 },
  ],
  /** Another edge sharing the worker's loaded target; `opts` are extra EdgeNode.start options. Closed after the test. */
  startEdge: async ({ edge }, use) => {
    const started = [];
    const { EdgeNode, Logger } = await import('@dssd/edge-node');
    await use(async (opts) => {
      const e = await EdgeNode.start({ port: 0, log: new Logger('silent'), model: edge.model, ...opts });
      started.push(e);
      return e;
    });
    for (const e of started) await e.close().catch(() => {});
  },
});

export { expect };
