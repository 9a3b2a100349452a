// `process` for simple-peer's readable-stream in the browser (esbuild injects this where `process` is used).
import process from 'process/browser.js';
export { process };
