/**
 * Who may join an edge. Two credentials, either or both: a shared secret (the token equals it), and signed,
 * expiring join tokens (HMAC-SHA256 under a key only the operator holds, issued by `dssd token`, by the
 * operator's own backend with `issueJoinToken`, or by this edge's POST /token behind an issuer secret). Browser
 * pages are also checked by their Origin header against an allow-list; Node devices send no Origin.
 *
 * Token format: `dssd1.<expiry, unix seconds>.<nonce, base64url>.<HMAC-SHA256(key, "dssd1.<expiry>.<nonce>"), base64url>`.
 */
import { createHmac, randomBytes, timingSafeEqual, createHash } from 'node:crypto';

export const TOKEN_PREFIX = 'dssd1';
/** Longest lifetime a token may be issued for (a day): tokens cannot be revoked, so they should be short. */
export const MAX_TOKEN_TTL_S = 86_400;
/** Allowed clock difference between the issuer and the edge. */
const CLOCK_SKEW_S = 30;

export interface AccessConfig {
  /** Shared secret: a join whose token equals it is accepted. */
  secret?: string;
  /** Key that signs join tokens (at least 16 characters). */
  tokenKey?: string;
  /** Bearer secret for POST /token (the edge then issues tokens itself; needs tokenKey). */
  issuerSecret?: string;
  /** Browser origins allowed to signal (exact `scheme://host[:port]`, or `*`). Localhost origins always are. */
  allowedOrigins?: readonly string[];
}

export type AccessErrorCode = 'BadKey' | 'BadTtl';

export class AccessError extends Error {
  override readonly name = 'AccessError';
  constructor(
    readonly code: AccessErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const b64url = (b: Buffer) => b.toString('base64url');

function sign(key: string, payload: string): Buffer {
  return createHmac('sha256', key).update(payload).digest();
}

/** Equality that takes the same time whatever the inputs (hashing first hides the length too). */
function constantTimeEqual(a: string, b: string): boolean {
  const ha = createHash('sha256').update(a).digest();
  const hb = createHash('sha256').update(b).digest();
  return timingSafeEqual(ha, hb);
}

function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length < 16)
    throw new AccessError('BadKey', 'the token key must be at least 16 characters');
}

/** Issues a join token valid for `ttlS` seconds from `nowS`. */
export function issueJoinToken(key: string, ttlS = 600, nowS = Math.floor(Date.now() / 1000)): string {
  checkKey(key);
  if (!Number.isInteger(ttlS) || ttlS < 1 || ttlS > MAX_TOKEN_TTL_S)
    throw new AccessError('BadTtl', `the token lifetime must be 1..${MAX_TOKEN_TTL_S} s, got ${ttlS}`);
  const payload = `${TOKEN_PREFIX}.${nowS + ttlS}.${b64url(randomBytes(12))}`;
  return `${payload}.${b64url(sign(key, payload))}`;
}

/** Why a token was refused, or null when it is valid. */
export function checkJoinToken(
  key: string,
  token: string,
  nowS = Math.floor(Date.now() / 1000),
): 'malformed' | 'bad signature' | 'expired' | null {
  const parts = token.split('.');
  if (parts.length !== 4 || parts[0] !== TOKEN_PREFIX || !/^\d{1,12}$/.test(parts[1])) return 'malformed';
  const mac = Buffer.from(parts[3], 'base64url');
  const want = sign(key, parts.slice(0, 3).join('.'));
  if (mac.length !== want.length || !timingSafeEqual(mac, want)) return 'bad signature';
  const exp = Number(parts[1]);
  if (exp + CLOCK_SKEW_S < nowS) return 'expired';
  if (exp - nowS > MAX_TOKEN_TTL_S + CLOCK_SKEW_S) return 'malformed'; // issued for longer than allowed
  return null;
}

/** The edge's access policy. */
export class AccessPolicy {
  constructor(readonly config: AccessConfig = {}) {
    if (config.tokenKey !== undefined) checkKey(config.tokenKey);
    if (config.issuerSecret !== undefined && config.tokenKey === undefined)
      throw new AccessError('BadKey', 'an issuer secret needs a token key to sign with');
  }

  /** True when joining needs a credential. */
  get required(): boolean {
    return this.config.secret !== undefined || this.config.tokenKey !== undefined;
  }

  /** Checks a join token; returns null when accepted, else a message for the device. */
  check(token: string | undefined, nowS?: number): string | null {
    if (!this.required) return null;
    if (token === undefined || token === '')
      return 'this edge requires a token (a shared secret or a join token)';
    if (this.config.secret !== undefined && constantTimeEqual(token, this.config.secret)) return null;
    if (this.config.tokenKey !== undefined) {
      const why = checkJoinToken(this.config.tokenKey, token, nowS);
      if (why === null) return null;
      if (why === 'expired') return 'the join token has expired; ask for a new one';
    }
    return 'the token was not accepted';
  }

  /** Whether a browser page at `origin` may signal to the edge at `selfOrigin`. */
  originAllowed(origin: string | undefined, selfOrigin: string): boolean {
    if (origin === undefined || origin === '') return true; // not a browser: the token decides
    if (origin === selfOrigin) return true;
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return false;
    }
    if ((u.protocol === 'http:' || u.protocol === 'https:') && isLoopbackHost(u.hostname)) return true;
    const list = this.config.allowedOrigins ?? [];
    return list.includes('*') || list.includes(u.origin);
  }

  /** Checks the bearer credential of a POST /token request. */
  issuerAllowed(authorization: string | undefined): boolean {
    const s = this.config.issuerSecret;
    if (s === undefined || authorization === undefined) return false;
    const m = /^Bearer (.+)$/.exec(authorization);
    return m !== null && constantTimeEqual(m[1], s);
  }
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h) || h.endsWith('.localhost');
}
