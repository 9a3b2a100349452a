import { fileURLToPath } from 'node:url';

/** The repository root (bench/dist/src → ../../..): results and docs are written under it. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
