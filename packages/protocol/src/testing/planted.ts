/**
 * Planted bugs: deliberately wrong round rules, only to show that the fidelity and exactness checks catch them.
 * They wrap the kernel's functions and reach the edge or the device through their `rules` option; production
 * code never imports this module.
 */
import { EXACT_RULES, sampleFrom, scanAcceptance, type RoundRules } from '@dssd/kernel';

/** inverted-ratio: accept with min(1, q/p), as the DSSD paper prints it (edge); no-max: residual ∝ |P − Q| (device). */
export type PlantedBug = 'inverted-ratio' | 'no-max';
export const PLANTED_BUGS: readonly PlantedBug[] = ['inverted-ratio', 'no-max'];

/** |P − Q|: what a residual without max(0,·) samples from once negative mass is "normalised" away. */
function absDiff(P: ArrayLike<number>, Q: ArrayLike<number>): Float64Array {
  const out = new Float64Array(P.length);
  for (let i = 0; i < P.length; i++) out[i] = Math.abs(P[i] - Q[i]);
  return out;
}

export function plantedRules(bug: PlantedBug): RoundRules {
  switch (bug) {
    case 'inverted-ratio':
      return {
        ...EXACT_RULES,
        // Swapping p and q turns the test r·q < p into r·p < q; p = 0 would make q/p infinite, so floor it.
        scanAcceptance: (p, q, u) =>
          scanAcceptance(
            q,
            Array.from(p, (x) => x || 1e-30),
            u,
          ),
      };
    case 'no-max':
      return { ...EXACT_RULES, sampleResidual: (P, Q, u) => sampleFrom(absDiff(P, Q), u) };
  }
}
