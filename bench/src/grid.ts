/**
 * Link profiles and the benchmark grids. The full cross product (methods × codecs × γ × links × settings ×
 * target cost) is thousands of real-time runs, so the default grid answers each question with a slice:
 * every method at its headline γ on the paper's link grid, the γ sweep on two profiles, the mobile profiles.
 */
import type { LinkProfile } from './shaper.js';
import { defaultPrompts } from '@dssd/models/node';
import { GAMMA, TARGET_COST_PRESETS } from '@dssd/protocol';
import { METHODS, type SettingName } from './run.js';

const sym = (rtt: number, mbps: number): LinkProfile => ({
  name: `rtt${rtt}-${mbps}M`,
  rttMs: rtt,
  upMbps: mbps,
  downMbps: mbps,
});

/** The paper's grid: RTT 0/20/50 ms × 10/50/100 Mbps, symmetric. */
export const PAPER_GRID: LinkProfile[] = [0, 20, 50].flatMap((rtt) => [10, 50, 100].map((r) => sym(rtt, r)));

/** Asymmetric mobile links: uplink a fifth of downlink; one with 1% packet loss. */
export const MOBILE: LinkProfile[] = [
  { name: 'mobile-10/50', rttMs: 40, upMbps: 10, downMbps: 50 },
  { name: 'mobile-20/100', rttMs: 30, upMbps: 20, downMbps: 100 },
  { name: 'mobile-lossy', rttMs: 60, upMbps: 4, downMbps: 20, loss: 0.01 },
];

export const PROFILES: Record<string, LinkProfile> = Object.fromEntries(
  [...PAPER_GRID, ...MOBILE].map((p) => [p.name, p]),
);

export const HEADLINE_GAMMA = GAMMA.default;
export const SWEEP_GAMMAS = [2, 4, 6, 8];
/** The adaptive controller may pick any γ up to this bound. */
export const ADAPTIVE_MAX_GAMMA = GAMMA.auto;
/** The 7B-on-an-edge-GPU emulation: ≈25 ms + 0.5 ms per scored token. */
/** EMULATION of a 7B target on an A10-class edge GPU (the settings home's edge-7b preset). */
export const EMULATED_7B = TARGET_COST_PRESETS['edge-7b'];

export interface GridCell {
  method: string;
  gamma: number;
  profile: string;
  setting: SettingName;
  /** Which slice of the grid asked for this cell (said in the output). */
  part: 'methods' | 'sweep' | 'mobile' | 'kernel';
}

export interface Grid {
  name: string;
  description: string;
  cells: GridCell[];
  /** Cells also run over real WebRTC with kernel rate shaping (when the machine allows). */
  kernelCells: GridCell[];
  /** Target cost modes: null = the real CPU target; {a, b} = emulation. */
  targets: ({ a: number; b: number } | null)[];
  prompts: number;
  maxNewTokens: number;
}

const ALL_METHODS = Object.keys(METHODS);
const SWEEP_METHODS = ['dssd-auto', 'dsd-f32'];

function methodsCells(profiles: string[], setting: SettingName, part: GridCell['part']): GridCell[] {
  return profiles.flatMap((profile) =>
    ALL_METHODS.map((method) => ({
      method,
      gamma: method === 'dssd-adaptive' ? ADAPTIVE_MAX_GAMMA : method === 'ar' ? 0 : HEADLINE_GAMMA,
      profile,
      setting,
      part,
    })),
  );
}

function sweepCells(profiles: string[], settings: SettingName[], methods: string[]): GridCell[] {
  const out: GridCell[] = [];
  for (const profile of profiles) {
    for (const setting of settings) {
      out.push({ method: 'ar', gamma: 0, profile, setting, part: 'sweep' });
      for (const method of methods) {
        for (const gamma of SWEEP_GAMMAS) out.push({ method, gamma, profile, setting, part: 'sweep' });
      }
      out.push({ method: 'dssd-adaptive', gamma: ADAPTIVE_MAX_GAMMA, profile, setting, part: 'sweep' });
    }
  }
  return out;
}

/** Drops repeated cells (the sweep's headline γ is also a methods cell), keeping the first. */
function dedupe(cells: GridCell[]): GridCell[] {
  const seen = new Set<string>();
  return cells.filter((c) => {
    const k = `${c.method}|${c.gamma}|${c.profile}|${c.setting}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/**
 * The kernel-shaped subset: the methods that answer "does the simulation hold on a real stack" at γ 4 on two
 * symmetric links, temperature 1. The same cells run simulated in the methods part, for the comparison.
 */
export const KERNEL_CELLS: GridCell[] = ['rtt20-10M', 'rtt20-50M'].flatMap((profile) =>
  ['ar', 'dsd-f32', 'dssd-auto', 'dssd-candidates'].map((method) => ({
    method,
    gamma: method === 'ar' ? 0 : HEADLINE_GAMMA,
    profile,
    setting: 't1' as const,
    part: 'kernel' as const,
  })),
);

/** The uplink-bound methods at |V| = 151,936: DSD's f32/f16 uplinks against DSSD's exact and f16 downlinks. */
const STANDIN_METHODS = ['ar', 'dsd-f32', 'dsd-f16', 'dssd-candidates', 'dssd-auto', 'dssd-f16'];
/** The 10 Mbps-uplink profiles: symmetric 20 ms, and mobile (10 up / 50 down, 40 ms). */
export const STANDIN_PROFILES = ['rtt20-10M', 'mobile-10/50'];

export const GRIDS: Record<'quick' | 'default' | 'adaptive' | 'standin', Grid> = {
  quick: {
    name: 'quick',
    description:
      'every method at γ 4 on two profiles (rtt20-50M, mobile-10/50), temperature 1, plus the dssd-auto γ sweep ' +
      '(2/4/6/8) and adaptive γ on those profiles under greedy and temperature 1; both target modes; 2 prompts × 48 ' +
      'tokens per run',
    cells: dedupe([
      ...methodsCells(['rtt20-50M', 'mobile-10/50'], 't1', 'methods'),
      ...sweepCells(['rtt20-50M', 'mobile-10/50'], ['t1', 'greedy'], ['dssd-auto']),
    ]),
    kernelCells: [],
    targets: [null, EMULATED_7B],
    prompts: 2,
    maxNewTokens: 48,
  },
  default: {
    name: 'default',
    description:
      "every method at γ 4 on the paper's grid (RTT 0/20/50 ms × 10/50/100 Mbps), temperature 1; the γ sweep " +
      '(2/4/6/8) of dssd-auto and dsd-f32 plus adaptive γ under greedy, temperature 1 and top-k 10 on rtt20-50M ' +
      'and mobile-10/50; every method on the three mobile profiles; both target modes; 2 prompts × 64 tokens per run; ' +
      'ar, dsd-f32, dssd-auto and dssd-candidates at γ 4 on rtt20-10M and rtt20-50M, temperature 1, also over real ' +
      'WebRTC with kernel rate shaping where the machine allows',
    cells: dedupe([
      ...methodsCells(
        PAPER_GRID.map((p) => p.name),
        't1',
        'methods',
      ),
      ...sweepCells(['rtt20-50M', 'mobile-10/50'], ['greedy', 't1', 'topk10'], SWEEP_METHODS),
      ...methodsCells(
        MOBILE.map((p) => p.name),
        't1',
        'mobile',
      ),
    ]),
    kernelCells: KERNEL_CELLS,
    targets: [null, EMULATED_7B],
    prompts: 2,
    maxNewTokens: 64,
  },
  standin: {
    name: 'standin',
    description:
      'the Qwen3-vocabulary stand-in pair (|V| = 151,936; its 4-bit draft): ar, dsd-f32, dsd-f16, dssd-candidates, ' +
      'dssd-auto and dssd-f16 at γ 4 on the 10 Mbps-uplink profiles (rtt20-10M, mobile-10/50), temperature 1, both ' +
      'target modes; 4 chat prompts × 64 tokens per run',
    cells: STANDIN_PROFILES.flatMap((profile) =>
      STANDIN_METHODS.map((method) => ({
        method,
        gamma: method === 'ar' ? 0 : HEADLINE_GAMMA,
        profile,
        setting: 't1' as const,
        part: 'methods' as const,
      })),
    ),
    kernelCells: [],
    targets: [null, EMULATED_7B],
    prompts: 4,
    maxNewTokens: 64,
  },
  adaptive: {
    name: 'adaptive',
    description:
      'the adaptive-γ check: ar, the dssd-auto γ sweep (2/4/6/8) and adaptive γ ≤ 8 on rtt20-50M and ' +
      'mobile-10/50 under greedy, temperature 1 and top-k 10; both target modes; 16 prompts × 128 tokens per run, ' +
      'so the adaptive/best ratio carries a paired bootstrap interval over prompts',
    cells: sweepCells(['rtt20-50M', 'mobile-10/50'], ['greedy', 't1', 'topk10'], ['dssd-auto']),
    kernelCells: [],
    targets: [null, EMULATED_7B],
    prompts: 16,
    maxNewTokens: 128,
  },
};

/** Prompts for the runs (encoded with the pair's tokenizer); the default pair was trained on English prose. */
export const PROMPTS = [
  'The jury said that the city',
  'In the morning the farmers went to the market and',
  'He opened the door and saw',
  'The report of the committee was',
  // Then the tests' prompts (the adaptive grid runs 16; --prompts takes up to 64, numbered variants after 20).
  ...defaultPrompts(62).slice(2),
];
