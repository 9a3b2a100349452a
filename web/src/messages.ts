/**
 * postMessage vocabulary between the <dssd-chat> element (host page, any origin) and its embed page (the edge's
 * origin). Both sides check the sender's window and origin, and parse what they receive with these functions:
 * anything else is ignored.
 */
import type { TokenOrigin } from '@dssd/protocol';
import type { DisplayStats } from './stats.js';

/** Theme values the host sets as CSS custom properties on <dssd-chat> (`--dssd-accent` → `accent`). */
export const THEME_KEYS = ['accent', 'bg', 'fg', 'card', 'line', 'muted', 'font'] as const;
export type Theme = Partial<Record<(typeof THEME_KEYS)[number], string>>;

export type HostToEmbed =
  | { type: 'dssd:init'; token?: string; theme?: Theme }
  | { type: 'dssd:ask'; prompt: string }
  | { type: 'dssd:stop' };

/** A CSS value safe to set as a custom property: colours, lengths, font names; no url(), no declarations. */
function cssValue(x: unknown): x is string {
  return typeof x === 'string' && x.length <= 200 && /^[#(),.%\w\s'"-]+$/.test(x) && !/url\s*\(/i.test(x);
}

export function parseTheme(x: unknown): Theme | undefined {
  if (!isObj(x)) return undefined;
  const t: Theme = {};
  for (const k of THEME_KEYS) if (cssValue(x[k])) t[k] = x[k] as string;
  return t;
}

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
    case 'dssd:init': {
      if (x.token !== undefined && (typeof x.token !== 'string' || x.token.length > 4096)) return null;
      const m: HostToEmbed = { type: 'dssd:init' };
      if (x.token !== undefined) m.token = x.token as string;
      const theme = parseTheme(x.theme);
      if (theme && Object.keys(theme).length) m.theme = theme;
      return m;
    }
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
