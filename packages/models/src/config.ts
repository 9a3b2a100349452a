/** What a loaded model is: its configuration, its I/O layout, and the ONNX Runtime surface it needs. */
import type * as ortTypes from 'onnxruntime-common';

/** The part of an ONNX Runtime module this package uses: onnxruntime-node and onnxruntime-web both fit. */
export type OrtModule = Pick<typeof ortTypes, 'InferenceSession' | 'Tensor'>;

export interface ModelConfig {
  name: string;
  /** config.json `model_type` (e.g. gpt2, llama, qwen2), or 'unknown'. */
  modelType: string;
  /** Tokenizer size: every logits row returned has exactly this length. */
  vocabSize: number;
  /** Rows the ONNX graph produces per token (≥ vocabSize means trimmed padding, < means −Infinity padding). */
  logitsRows: number;
  maxContext: number;
  eosTokenId: number;
  eosTokenIds: readonly number[];
  bosTokenId: number | null;
  numLayers: number;
  numKvHeads: number;
  headDim: number;
  kvType: 'float32' | 'float16';
}

/** Names and shapes read from the ONNX session; fixed per model. */
export interface ModelLayout {
  /** The ONNX file, relative to the model source (e.g. onnx/model.onnx). */
  file: string;
  inputIds: string;
  attentionMask: string | null;
  positionIds: string | null;
  numLogitsToKeep: string | null;
  numLogitsToKeepScalar: boolean;
  useCacheBranch: string | null;
  pastKeys: string[];
  pastValues: string[];
  presentKeys: string[];
  presentValues: string[];
  logits: string;
}
