export { ModelError, ModelErrorCode } from './errors.js';
export { fetchLoader, joinPath } from './loader.js';
export type { ModelLoader, ReadFile } from './loader.js';
export { LanguageModel, browserExecutionProviders, loadModel } from './model.js';
export type { LoadModelOptions, ModelConfig, ModelLayout, OrtModule } from './model.js';
export { ModelSession } from './session.js';
export type { ForwardOptions } from './session.js';
export { TextTokenizer, sha256Hex, tokenizerHash } from './tokenizer.js';
export type { DecodeOptions, DecodeStream, TokenizerJson } from './tokenizer.js';
