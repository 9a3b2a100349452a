import type { LanguageModel } from '@dssd/models';
import type { DeviceOptions } from '@dssd/protocol';
import { connectNodeDevice } from '../src/index.js';

/**
 * One connected device per settings, reused across prompts (rewound to an empty conversation each time): the
 * WebRTC stack in Node is not robust to hundreds of peer connections opened and closed in quick succession.
 * `edge` and `draft` are read at the first run, so a pool can be made before `before()` loads them.
 */
export function devicePool(edge: () => string, draft: () => LanguageModel) {
  const devices = new Map<string, Awaited<ReturnType<typeof connectNodeDevice>>>();
  return {
    async run(settings: DeviceOptions['settings'], prompt: string, maxNewTokens: number) {
      const key = JSON.stringify(settings);
      let dev = devices.get(key);
      if (!dev) {
        dev = await connectNodeDevice({ edge: edge(), settings, draft: draft() });
        devices.set(key, dev);
      }
      dev.session.rewind(0);
      const r = await dev.session.generate(draft().tokenizer.encode(prompt), { maxNewTokens });
      return { r, dev };
    },
    close(): void {
      for (const d of devices.values()) d.close();
      devices.clear();
    },
  };
}

const GREEDY = { temperature: 0, topK: 0, topP: 1 };
/** Every exact way to decode greedily besides `ar`: each must reproduce edge-only decoding token for token. */
export const GREEDY_CONFIGS: DeviceOptions['settings'][] = [
  { mode: 'dsd', gamma: 4, sampling: GREEDY },
  { mode: 'dssd', gamma: 4, codec: 'auto', sampling: GREEDY },
  { mode: 'dssd', gamma: 3, codec: 'f32', sampling: GREEDY },
  { mode: 'dssd', gamma: 5, codec: 'sparse', sampling: GREEDY },
  { mode: 'dssd', gamma: 4, codec: 'candidates', sampling: GREEDY },
  { mode: 'dssd', gamma: 4, codec: 'auto', pipeline: true, sampling: GREEDY },
  { mode: 'dssd', gamma: 3, codec: 'candidates', pipeline: true, window: 9, sampling: GREEDY },
];
