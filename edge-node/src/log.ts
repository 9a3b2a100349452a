/** Structured logs: one JSON object per line on stderr. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const ORDER: LogLevel[] = ['debug', 'info', 'warn', 'error', 'silent'];

export class Logger {
  constructor(readonly level: LogLevel = 'info') {}
  private emit(level: LogLevel, msg: string, fields: Record<string, unknown>): void {
    if (ORDER.indexOf(level) < ORDER.indexOf(this.level)) return;
    process.stderr.write(JSON.stringify({ t: new Date().toISOString(), level, msg, ...fields }) + '\n');
  }
  debug(msg: string, f: Record<string, unknown> = {}): void {
    this.emit('debug', msg, f);
  }
  info(msg: string, f: Record<string, unknown> = {}): void {
    this.emit('info', msg, f);
  }
  warn(msg: string, f: Record<string, unknown> = {}): void {
    this.emit('warn', msg, f);
  }
  error(msg: string, f: Record<string, unknown> = {}): void {
    this.emit('error', msg, f);
  }
}
