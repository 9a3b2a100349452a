/** Fixed error codes of @dssd/models; callers switch on `code`, never on the message text. */
export enum ModelErrorCode {
  /** A required file (config.json, tokenizer.json, the ONNX file, …) does not exist at the model source. */
  MissingFile = 'MISSING_FILE',
  /** A file exists but could not be read, parsed or turned into an ONNX session. */
  LoadFailed = 'LOAD_FAILED',
  /** config.json / tokenizer_config.json lack a value the runtime needs, or have a nonsensical one. */
  BadConfig = 'BAD_CONFIG',
  /** The ONNX graph is not a decoder-with-past (missing inputs/outputs, unexpected shapes or types). */
  BadLayout = 'BAD_LAYOUT',
  /** The tokenizer and the model's logits rows disagree in a way that is not padding. */
  VocabMismatch = 'VOCAB_MISMATCH',
  /** Forwarding would exceed the model's context length; the session is left unchanged. */
  ContextOverflow = 'CONTEXT_OVERFLOW',
  /** A token id is not an integer the model can embed. */
  BadToken = 'BAD_TOKEN',
  /** Any other argument outside its documented domain (e.g. truncate past the end). */
  BadArgument = 'BAD_ARGUMENT',
  /** The session or model was disposed. */
  Disposed = 'DISPOSED',
  /** ONNX Runtime failed while running the graph; the session is left unchanged. */
  RunFailed = 'RUN_FAILED',
}

/** The only error type thrown by @dssd/models. `cause` carries the underlying error where there is one. */
export class ModelError extends Error {
  override readonly name = 'ModelError';
  readonly code: ModelErrorCode;

  constructor(code: ModelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
