// The page against an edge on each Node WebRTC stack (@roamhq/wrtc and node-datachannel, `--webrtc`): greedy
// DSSD equals edge-only decoding, and a data channel cut mid-answer resumes with the answer unchanged.
import { GREEDY_DSSD, PROMPT, expect, query, test } from './fixtures.mjs';

for (const webrtc of ['wrtc', 'datachannel']) {
  test(`${webrtc} edge: the page's greedy answer equals edge-only decoding, also across a dropped channel`, async ({
    context,
    startEdge,
    reference,
  }) => {
    // A slower (emulated) target so the answer is still streaming when the channel is cut.
    const edge = await startEdge({ webrtc, targetCost: { a: 15, b: 0 } });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(edge.url + query({ ...GREEDY_DSSD, codec: 'auto' }));
    await page.getByRole('status').filter({ hasText: 'Connected to the edge' }).waitFor({ timeout: 60_000 });
    await page.getByRole('textbox', { name: 'Prompt' }).fill(PROMPT);
    await page.getByRole('button', { name: 'Send', exact: true }).click();
    await page.locator('.answer[aria-busy="true"] .tok').nth(8).waitFor({ timeout: 30_000 });
    const live = [...edge.sessions.values()];
    expect(live.length).toBe(1);
    live[0].transport.close(); // the edge's side of the data channel goes away
    const answer = page.getByLabel('Answer', { exact: true }).last();
    await answer.and(page.locator('[aria-busy="false"]')).waitFor({ state: 'attached', timeout: 60_000 });
    expect(await answer.getAttribute('data-done')).toBe('maxTokens');
    expect(await answer.textContent(), 'no token lost or duplicated').toBe(reference.text);
    expect(await page.getByRole('alert').isVisible()).toBe(false);
    expect(errors).toEqual([]);
  });
}
