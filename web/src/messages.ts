/**
 * postMessage vocabulary between the <dssd-chat> element (host page, any origin) and its embed page (the edge's
 * origin). Both sides check the sender's window and origin, and parse what they receive with these functions:
 * anything else is ignored.
 */
import type { TokenOrigin } from '@dssd/protocol';
import type { DisplayStats } from './stats.js';

export type HostToEmbed =
  { type: 'dssd:init'; token?: string } | { type: 'dssd:ask'; prompt: string } | { type: 'dssd:stop' };

export type EmbedToHost =
  | { type: 'dssd:ready' }
  | { type: 'dssd:status'; text: string }
  | { type: 'dssd:token'; text: string; origin: TokenOrigin; tokens: number[] }
  | {
      type: 'dssd:answer';
      prompt: string;
      text: string;
      tokens: number[];
      done: string;
      stats: DisplayStats;
    }
  | { type: 'dssd:error'; code: string; message: string };

const isObj = (x: unknown): x is Record<string, unknown> =>
  typeof x === 'object' && x !== null && !Array.isArray(x);

/** A message from the host page, or null. */
export function parseHostMessage(x: unknown): HostToEmbed | null {
  if (!isObj(x)) return null;
  switch (x.type) {
    case 'dssd:init':
      if (x.token !== undefined && (typeof x.token !== 'string' || x.token.length > 4096)) return null;
      return x.token === undefined ? { type: 'dssd:init' } : { type: 'dssd:init', token: x.token as string };
    case 'dssd:ask':
      return typeof x.prompt === 'string' && x.prompt.length <= 100_000
        ? { type: 'dssd:ask', prompt: x.prompt }
        : null;
    case 'dssd:stop':
      return { type: 'dssd:stop' };
    default:
      return null;
  }
}

const EMBED_TYPES = new Set(['dssd:ready', 'dssd:status', 'dssd:token', 'dssd:answer', 'dssd:error']);

/** A message from the embed page, or null (shape-checked only: it comes from the edge's origin). */
export function parseEmbedMessage(x: unknown): EmbedToHost | null {
  if (!isObj(x) || typeof x.type !== 'string' || !EMBED_TYPES.has(x.type)) return null;
  return x as EmbedToHost;
}
