/** Flag parsing shared by the CLI's commands: failures print one line and exit 2. */
import {
  EDGE_NODE_DEFAULTS,
  SETTING_SPECS,
  WEBRTC_STACKS,
  parseSettings,
  parseTargetCost,
  parseBatchCost,
  type BatchCostTable,
  toSessionSettings,
  type TargetCost,
  type WebrtcStack,
} from '@dssd/protocol';

export function fail(msg: string): never {
  process.stderr.write(`dssd: ${msg}\n(run 'dssd --help' for usage)\n`);
  process.exit(2);
}

export function num(v: string | undefined, name: string, dflt: number, int = false): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x)))
    fail(`--${name} must be a${int ? 'n integer' : ' number'}, got '${v}'`);
  return x;
}

export function list<T extends string>(
  v: string | undefined,
  allowed: readonly T[],
  name: string,
): T[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => s.trim()) as T[];
  for (const x of xs) if (!allowed.includes(x)) fail(`--${name}: '${x}' is not one of ${allowed.join(', ')}`);
  return xs;
}

export function parseIceServers(v: string | undefined): RTCIceServer[] {
  if (!v) return [];
  if (v.trim().startsWith('[')) {
    try {
      const a = JSON.parse(v) as RTCIceServer[];
      if (!Array.isArray(a)) throw new Error('not an array');
      return a;
    } catch (e) {
      fail(`--ice-servers is not a JSON array of RTCIceServer: ${(e as Error).message}`);
    }
  }
  return v.split(',').map((urls) => ({ urls: urls.trim() }));
}

/** The settings flags (from the settings home) and the device commands' own flags. */
export const deviceFlags = {
  // Switches (`--pipeline`) stand alone; every other setting takes a value.
  ...Object.fromEntries(
    SETTING_SPECS.map((s) => [
      s.flag,
      { type: s.kind === 'bool' ? ('boolean' as const) : ('string' as const) },
    ]),
  ),
  'draft-ms': { type: 'string' },
  edge: { type: 'string' },
  prompt: { type: 'string' },
  chat: { type: 'boolean' },
  then: { type: 'string', multiple: true },
  tokens: { type: 'string' },
  samples: { type: 'string' },
  draft: { type: 'string' },
  json: { type: 'boolean' },
  token: { type: 'string' },
  webrtc: { type: 'string' },
  'plant-bug': { type: 'string' },
} as const;

/** Device settings from the flags; every bad value is named (all-or-nothing). */
export function deviceSettings(v: Record<string, string | boolean | string[] | undefined>) {
  const flags = Object.fromEntries(
    SETTING_SPECS.map((s) => [
      s.flag,
      typeof v[s.flag] === 'boolean' ? (v[s.flag] ? '1' : '0') : v[s.flag],
    ]).filter(([, x]) => x !== undefined),
  );
  const { settings: user, errors } = parseSettings(flags, { names: 'flag' });
  if (errors.length) fail(errors.map((e) => `--${e.message}`).join('; '));
  const draftMs = v['draft-ms'] === undefined ? 0 : num(v['draft-ms'] as string, 'draft-ms', 0);
  if (draftMs < 0) fail('--draft-ms must be >= 0');
  try {
    return { ...toSessionSettings(user), maxTokens: user.maxTokens, draftCostMs: draftMs };
  } catch (e) {
    return fail((e as Error).message);
  }
}

/** --webrtc: a Node WebRTC stack (default the settings home's). */
export function webrtcStack(v: string | undefined): WebrtcStack {
  if (v === undefined) return EDGE_NODE_DEFAULTS.webrtc;
  if (!(WEBRTC_STACKS as readonly string[]).includes(v))
    fail(`--webrtc must be one of ${WEBRTC_STACKS.join(', ')}, got '${v}'`);
  return v as WebrtcStack;
}

/** --target-ms: A,B or a preset name. */
export function targetCost(v: string | undefined): TargetCost | undefined {
  if (v === undefined) return undefined;
  try {
    return parseTargetCost(v);
  } catch (e) {
    return fail(`--target-ms: ${(e as Error).message}`);
  }
}

/** --batch-cost: a batched cost table preset (EMULATION). */
export function batchCost(v: string | undefined): BatchCostTable | undefined {
  if (v === undefined) return undefined;
  try {
    return parseBatchCost(v);
  } catch (e) {
    return fail(`--batch-cost: ${(e as Error).message}`);
  }
}
