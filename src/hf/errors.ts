/** An HF directory or export request this project cannot represent or would overwrite: one line, naming file and field. */
export class HfError extends Error {
  override name = 'HfError';
}
