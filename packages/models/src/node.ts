import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFile, readdir } from 'node:fs/promises';
import { fetchLoader } from './loader.js';
import type { ModelLoader } from './loader.js';
import { loadModel } from './model.js';
import type { LanguageModel, LoadModelOptions, OrtModule } from './model.js';

function isMissing(e: unknown): boolean {
  const code = (e as { code?: string } | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR';
}

/** Reads local files (missing → null) and lists folders, so `loadModel` can discover onnx/model*.onnx. */
export function nodeFileLoader(): ModelLoader {
  return {
    read: async (path) => {
      try {
        return new Uint8Array(await readFile(path));
      } catch (e) {
        if (isMissing(e)) return null;
        throw e;
      }
    },
    list: async (path) => {
      try {
        return await readdir(path);
      } catch (e) {
        if (isMissing(e)) return null;
        throw e;
      }
    },
  };
}

/** Imports onnxruntime-node (an optional peer dependency, so browser bundles never see it). */
export async function importOnnxRuntimeNode(): Promise<OrtModule> {
  const ort = await import('onnxruntime-node');
  return ((ort as { default?: OrtModule }).default ?? ort) as OrtModule;
}

export interface LoadNodeModelOptions extends Partial<Omit<LoadModelOptions, 'ort'>> {
  ort?: OrtModule;
  /**
   * ORT intra-op threads. Default 1: on 2 vCPU a second thread did not speed up 1–5-token forwards of the default
   * pair (it did speed up a 128-token prefill ~1.6×), and the other end of the protocol needs the other core.
   */
  threads?: number;
}

/** `loadModel` for Node: a local folder (or http(s) URL) with onnxruntime-node on the CPU EP. */
export async function loadNodeModel(
  source: string,
  options: LoadNodeModelOptions = {},
): Promise<LanguageModel> {
  const { threads = 1, ort, loader, sessionOptions, ...rest } = options;
  return loadModel(source, {
    ...rest,
    ort: ort ?? (await importOnnxRuntimeNode()),
    loader: loader ?? (/^https?:\/\//.test(source) ? fetchLoader() : nodeFileLoader()),
    sessionOptions: {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      ...sessionOptions,
    },
  });
}

/** The embedded default pair, as shipped in the repository's models/default (dist/src → ../../../../models). */
const DEFAULT_ROOT = fileURLToPath(new URL('../../../../models/default/', import.meta.url));
export const DEFAULT_MODEL_DIRS = Object.freeze({
  target: path.join(DEFAULT_ROOT, 'target'),
  draft: path.join(DEFAULT_ROOT, 'draft'),
});

/**
 * The Qwen3-vocabulary stand-in pair (151,669-token tokenizer, 151,936 logits rows, fp16 KV caches, external data)
 * and the draft's 4-bit variant. Generated, not committed: `npm run models:standin` (models/train/make_qwen_standin.py)
 * writes them to models/qwen3-standin, with numpy reference logits beside them.
 */
const STANDIN_ROOT = fileURLToPath(new URL('../../../../models/qwen3-standin/', import.meta.url));
export const QWEN_STANDIN_DIRS = Object.freeze({
  root: STANDIN_ROOT,
  target: path.join(STANDIN_ROOT, 'target'),
  draft: path.join(STANDIN_ROOT, 'draft'),
  draftQ4: path.join(STANDIN_ROOT, 'draft-q4'),
  /** draft-q4 without float16 tensors (fp32 weights and KV cache): WebGPU adapters without shader-f16. */
  draftQ4F32: path.join(STANDIN_ROOT, 'draft-q4-f32'),
});

/** Why the stand-in pair cannot be used here, or null when all its folders are present. */
export function qwenStandinMissing(): string | null {
  const { target, draft, draftQ4, draftQ4F32 } = QWEN_STANDIN_DIRS;
  for (const dir of [target, draft, draftQ4, draftQ4F32]) {
    if (!existsSync(path.join(dir, 'onnx', 'model.onnx_data')))
      return `${dir} is missing: run \`npm run models:standin\` (needs Debian's python3-onnx and python3-numpy)`;
  }
  return null;
}

/**
 * `n` prompts suited to the default pair (models/default/prompts.json); beyond the list, the same prompts with a
 * number appended so that every device of a load test has its own.
 */
export function defaultPrompts(n: number): string[] {
  const base = (
    JSON.parse(readFileSync(path.join(DEFAULT_ROOT, 'prompts.json'), 'utf8')) as { prompts: string[] }
  ).prompts;
  return Array.from({ length: n }, (_, i) => (i < base.length ? base[i] : `${base[i % base.length]} ${i}`));
}
