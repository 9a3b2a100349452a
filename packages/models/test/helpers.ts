import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LanguageModel, ModelLoader } from '../src/index.js';
import { loadNodeModel, nodeFileLoader } from '../src/node.js';

// Tests run from dist/test, sources stay in test/ and the models at the repository root.
export const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
export const DEFAULT_MODELS = fileURLToPath(new URL('../../../../models/default/', import.meta.url));
export const DRAFT = DEFAULT_MODELS + 'draft';
export const TARGET = DEFAULT_MODELS + 'target';
export const TINY_LLAMA = FIXTURES + 'tiny-llama';

export const FIXTURE_IDS: number[] = JSON.parse(readFileSync(FIXTURES + 'fixture.json', 'utf8')).ids;

/** Rows of a float32 LE [n, width] file. */
export function readRows(file: string, width: number): Float32Array[] {
  const buf = readFileSync(file);
  const all = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  const rows: Float32Array[] = [];
  for (let i = 0; i < all.length / width; i++) rows.push(all.subarray(i * width, (i + 1) * width));
  return rows;
}

export function maxAbsDiff(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  if (a.length !== b.length) throw new Error(`row counts differ: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let r = 0; r < a.length; r++) {
    if (a[r].length !== b[r].length)
      throw new Error(`row ${r} lengths differ: ${a[r].length} vs ${b[r].length}`);
    for (let i = 0; i < a[r].length; i++) {
      const d = Math.abs(a[r][i] - b[r][i]);
      if (!(d <= m)) m = d; // NaN propagates as a failure
    }
  }
  return m;
}

const cache = new Map<string, Promise<LanguageModel>>();
/** One shared instance per folder, so each test file loads a model once. */
export function model(dir: string): Promise<LanguageModel> {
  let p = cache.get(dir);
  if (!p) {
    p = loadNodeModel(dir);
    cache.set(dir, p);
  }
  return p;
}

/**
 * A loader over real files with some paths replaced (bytes) or hidden (null); `onnxListing` replaces what
 * list() reports for the onnx/ folder.
 */
export function overlayLoader(
  dir: string,
  files: Record<string, Uint8Array | string | null>,
  onnxListing?: string[] | null,
): ModelLoader {
  const base = nodeFileLoader();
  return {
    read: async (path) => {
      const rel = path.startsWith(dir + '/') ? path.slice(dir.length + 1) : path;
      if (rel in files) {
        const v = files[rel];
        return typeof v === 'string' ? new TextEncoder().encode(v) : v;
      }
      return base.read(path);
    },
    list: async (path) =>
      onnxListing !== undefined && path === dir + '/onnx' ? onnxListing : base.list!(path),
  };
}
