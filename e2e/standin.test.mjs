// The Qwen3-vocabulary stand-in pair in Chromium: the page's Worker runs the 4-bit draft (MatMulNBits, fp16 KV
// cache, weights in an external-data file) on onnxruntime-web WASM against an edge serving the stand-in target;
// a two-turn chat with the model's template gives the edge-only greedy answers, and the second turn feeds only
// its own tokens (the first turn stays in both KV caches). Reduced lengths for CI.
import {
  QWEN_STANDIN_DIRS,
  STANDIN_MISSING,
  arChat,
  askPage,
  expect,
  test,
  waitConnected,
} from './standin.mjs';
import { query } from './fixtures.mjs';

const TOKENS = 16;
const TURNS = ['What is the capital of France?', 'And of Italy?'];

test.skip(!!STANDIN_MISSING, STANDIN_MISSING ?? '');

test('stand-in pair: 4-bit draft in the Worker (WASM), two-turn chat equals edge-only greedy; turn 2 prefills only itself', async ({
  context,
  standin,
  standinEdge,
}) => {
  test.setTimeout(240_000);
  const edge = await standinEdge(QWEN_STANDIN_DIRS.draftQ4);
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(
    edge.url +
      query({ temperature: 0, gamma: 4, maxTokens: TOKENS, topK: 0, topP: 1, mode: 'dssd', webgpu: 'off' }),
  );
  await waitConnected(page);
  await expect(page.getByRole('status')).toContainText('wasm execution provider');
  const ref = await arChat(edge.url, standin.draft, TURNS, TOKENS);

  const got = [];
  for (const t of TURNS) got.push(await askPage(page, t));
  for (const [i, r] of got.entries()) {
    expect(r.alert, `turn ${i + 1}`).toBeNull();
    expect(r.tokens, `turn ${i + 1}: page (dssd, 4-bit draft) vs edge-only`).toEqual(ref[i].tokens);
    expect(r.prefilled, `turn ${i + 1} prefill`).toBe(ref[i].prefilled);
    expect(r.reused, `turn ${i + 1} reused`).toBe(ref[i].reused);
  }
  // Turn 2 keeps everything turn 1 left in the caches (its prompt, its answer, the end-of-turn token if it stopped
  // on one) and feeds only the template's text for the new user turn.
  const [a, b] = got;
  expect(b.reused).toBe(a.prefilled + a.tokens.length + (a.done === 'eos' ? 1 : 0));
  const fullRender = standin.draft.tokenizer.encode(
    standin.draft.chatTemplate.render([
      { role: 'user', content: TURNS[0] },
      { role: 'assistant', content: standin.draft.tokenizer.decode(a.tokens, { skipSpecialTokens: true }) },
      { role: 'user', content: TURNS[1] },
    ]),
  ).length;
  expect(b.prefilled).toBeLessThan(fullRender - a.tokens.length);
  // The figures are on the page: in the statistics and in each answer's line.
  expect(b.stats.prefilled).toBe(b.prefilled);
  await expect(page.locator('[data-stat="prefill"]')).toHaveText(
    `${b.prefilled} (${b.reused} reused from the caches)`,
  );
  await expect(page.locator('[data-meta="prefill"]').last()).toHaveText(
    `prefilled ${b.prefilled} tokens, ${b.reused} reused from the caches`,
  );
  console.log(
    `  [stand-in] 4-bit draft (WASM): turn 1 prefilled ${a.prefilled}, ${a.tokens.length} tokens ` +
      `(${a.stats.tokensPerSecond.toFixed(1)} tok/s, acceptance ${a.stats.acceptanceRate.toFixed(2)}); turn 2 ` +
      `prefilled ${b.prefilled}, reused ${b.reused} (the whole conversation renders to ${fullRender})`,
  );
  expect(errors).toEqual([]);
});
