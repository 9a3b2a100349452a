import { ModelError, ModelErrorCode } from './errors.js';

/** Reads one file of a model source by full path or URL; resolves `null` when the file does not exist. */
export type ReadFile = (path: string) => Promise<Uint8Array | ArrayBuffer | null>;

/**
 * File access, injected so the same code runs in Node, a page and a Worker. `list` is optional (URLs cannot be
 * listed); with it, `loadModel` can discover `onnx/model*.onnx` and external-data files.
 */
export interface ModelLoader {
  read: ReadFile;
  /** Names of the files directly inside a folder; `null` when the folder does not exist. */
  list?: (path: string) => Promise<string[] | null>;
}

/** Joins a model source (folder path or URL, with or without trailing slash) and a relative file name. */
export function joinPath(base: string, rel: string): string {
  if (base === '' || base === '.') return rel;
  return base.endsWith('/') ? base + rel : `${base}/${rel}`;
}

/**
 * A loader over `fetch` (browser, Worker, or Node ≥ 18): 404 means missing; any other non-OK status is an error.
 * Relative URLs resolve against the page/worker location as `fetch` does.
 */
export function fetchLoader(fetchFn: typeof fetch = globalThis.fetch.bind(globalThis)): ModelLoader {
  return {
    read: async (url) => {
      let res: Response;
      try {
        res = await fetchFn(url);
      } catch (e) {
        throw new ModelError(
          ModelErrorCode.LoadFailed,
          `fetching ${url} failed: ${e instanceof Error ? e.message : String(e)}`,
          {
            cause: e,
          },
        );
      }
      if (res.status === 404) return null;
      if (!res.ok)
        throw new ModelError(ModelErrorCode.LoadFailed, `fetching ${url} returned HTTP ${res.status}`);
      return new Uint8Array(await res.arrayBuffer());
    },
  };
}

/** Accepts either a bare read function or a full loader. */
export function toLoader(loader: ModelLoader | ReadFile): ModelLoader {
  return typeof loader === 'function' ? { read: loader } : loader;
}
