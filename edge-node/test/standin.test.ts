/**
 * End to end over real WebRTC on the Qwen3-vocabulary stand-in pair (models/train/make_qwen_standin.py): a
 * 151,669-token vocabulary, fp16 KV caches, external data. Greedy identity with edge-only decoding and the
 * fidelity of the output law, at reduced length (the default pair's edge.test.ts runs the full versions).
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadNodeModel, QWEN_STANDIN_DIRS, qwenStandinMissing } from '@dssd/models/node';
import type { LanguageModel } from '@dssd/models';
import type { DeviceOptions } from '@dssd/protocol';
import { releaseWebrtc } from '@dssd/protocol/node';
import { EdgeNode, Logger } from '../src/index.js';
import { runFidelity } from '../src/drills/fidelity.js';
import { GREEDY_CONFIGS, devicePool } from './device-pool.js';

// Generated, not committed: .ci/run generates the pair and sets DSSD_REQUIRE_STANDIN, so CI fails instead of skipping.
const missing = qwenStandinMissing();
if (missing && process.env.DSSD_REQUIRE_STANDIN) throw new Error(missing);
const skip = missing ?? false;
const execFileAsync = promisify(execFile);

let node: EdgeNode;
let draft: LanguageModel;

// Chat-formatted, as an instruct model would see them: special tokens are single ids in this vocabulary.
const PROMPTS = [
  '<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n',
  '<|im_start|>user\nWrite a haiku about rain.<|im_end|>\n<|im_start|>assistant\n',
  '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\n数一数到五<|im_end|>\n<|im_start|>assistant\n',
];

before(async () => {
  if (skip) return;
  const log = new Logger('silent');
  node = await EdgeNode.start({
    port: 0,
    log,
    modelDir: QWEN_STANDIN_DIRS.target,
    draftDir: QWEN_STANDIN_DIRS.draftQ4,
  });
  draft = await loadNodeModel(QWEN_STANDIN_DIRS.draft);
});
after(async () => {
  pool.close();
  await node?.close();
});

const pool = devicePool(
  () => node.url,
  () => draft,
);

test(
  'qwen stand-in, greedy: dssd (exact codecs, serial and pipelined) and dsd equal ar',
  { skip },
  async () => {
    const greedy = { temperature: 0, topK: 0, topP: 1 };
    const configs = GREEDY_CONFIGS;
    const failures: string[] = [];
    let accepted = 0;
    let drafted = 0;
    for (const prompt of PROMPTS) {
      const ref = (await pool.run({ mode: 'ar', sampling: greedy }, prompt, 24)).r.tokens;
      assert.ok(ref.length > 0);
      for (const s of configs) {
        const { r } = await pool.run(s, prompt, 24);
        if (r.tokens.join() !== ref.join())
          failures.push(
            `${s.mode}/${s.codec ?? ''}${s.pipeline ? ' pipelined' : ''}: ${JSON.stringify(prompt)}`,
          );
        accepted += r.stats.acceptedTokens;
        drafted += r.stats.draftedTokens;
      }
    }
    assert.deepEqual(failures, []);
    // The pair disagrees often enough that rejections (and so the downlink codecs) were exercised.
    assert.ok(accepted < drafted, `accepted ${accepted} of ${drafted}`);
  },
);

test(
  'qwen stand-in, fidelity: exact codecs follow the target law at temperature 1',
  { skip },
  async (ctx) => {
    for (const codec of ['f32', 'candidates'] as const) {
      const r = await runFidelity({
        edge: node.url,
        prompt: PROMPTS[0],
        tokens: 2,
        samples: 300,
        settings: { mode: 'dssd', codec, gamma: 4, seed: 1, sampling: { temperature: 1, topK: 0, topP: 1 } },
        draftDir: QWEN_STANDIN_DIRS.draft,
      });
      ctx.diagnostic(
        `dssd/${codec}: p = ${r.pValue.toPrecision(3)} (${r.samples} samples, ${r.tokens} tokens)`,
      );
      assert.ok(r.pValue > 1e-3, `dssd/${codec}: p = ${r.pValue}`);
    }
  },
);

test(
  'qwen stand-in, dssd generate --chat: two turns with the template, the second on the reused caches',
  { skip },
  async () => {
    const bin = fileURLToPath(new URL('../../bin/dssd.js', import.meta.url));
    const chat = async (mode: string) => {
      const { stdout } = await execFileAsync(process.execPath, [
        bin,
        'generate',
        '--edge',
        node.url,
        '--draft',
        QWEN_STANDIN_DIRS.draft,
        '--chat',
        '--json',
        '--prompt',
        'What is the capital of France?',
        '--then',
        'And of Italy?',
        '--mode',
        mode,
        '--temperature',
        '0',
        '--max-tokens',
        '12',
      ]);
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as {
        turns: { text: string; reused: number; prefilled: number }[];
      };
    };
    const [dssd, ar] = [await chat('dssd'), await chat('ar')];
    assert.deepEqual(dssd.turns, ar.turns); // greedy: same answers, same cache reuse
    const [one, two] = dssd.turns;
    // "<|im_start|>user\n…<|im_end|>\n<|im_start|>assistant\n" is one prefill; the second turn reuses all of it and
    // the 12 answer tokens (13 with an end-of-turn token it stopped on) and prefills only its own text.
    assert.ok(
      two.reused >= one.prefilled + 1 && two.reused <= one.prefilled + 13,
      JSON.stringify(dssd.turns),
    );
    assert.ok(two.prefilled < one.prefilled + 6, JSON.stringify(dssd.turns));
  },
);

// Last: node-datachannel keeps the process alive while any peer connection is open (a test's leftover would hang the
// run rather than fail it).
after(() => releaseWebrtc());
