/** Per-session round budget: a token bucket that bursts up to one second's allowance. */
import { ProtocolError, ProtocolErrorCode } from '../errors.js';

export class RoundBucket {
  private tokens = 0;
  private at = 0;

  constructor(
    private readonly perSecond: number,
    private readonly now: () => number,
  ) {}

  /** Takes one round or throws RateLimited. */
  take(): void {
    const rate = this.perSecond;
    if (!Number.isFinite(rate)) return;
    const t = this.now();
    this.tokens = Math.min(rate, this.tokens + ((t - this.at) / 1000) * rate);
    this.at = t;
    if (this.tokens < 1) {
      throw new ProtocolError(
        ProtocolErrorCode.RateLimited,
        `more than ${rate} rounds per second; this edge limits each session`,
      );
    }
    this.tokens -= 1;
  }
}
