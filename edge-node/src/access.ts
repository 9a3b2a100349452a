/**
 * Who may join an edge. Two credentials, either or both: a shared secret (the token equals it), and signed,
 * expiring join tokens (HMAC-SHA256 under a key only the operator holds, issued by `dssd token`, by the
 * operator's own backend with `issueJoinToken`, or by this edge's POST /token behind an issuer secret). Browser
 * pages are also checked by their Origin header against an allow-list; Node devices send no Origin.
 *
 * Token format: `dssd1.<expiry, unix seconds>.<nonce, base64url>.<HMAC-SHA256(key, "dssd1.<expiry>.<nonce>"), base64url>`.
 */
import { createHmac, randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { EDGE_NODE_DEFAULTS } from '@dssd/protocol';

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
  /**
   * The edge's own public origins (`scheme://host[:port]`, --public-origin): the Host names it answers besides
   * loopback names and IP literals, and origins always allowed. Never derived from a request's Host header.
   */
  publicOrigins?: readonly string[];
  /** Bearer token for /metrics and the full /healthz (default: the join credential, when one is set). */
  metricsToken?: string;
  /** A signed join token admits one fresh session; its nonce is remembered until it expires. */
  singleUseTokens?: boolean;
}

export type AccessErrorCode = 'BadKey' | 'BadTtl' | 'BadOrigin';

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

/** What a join token admits: a fresh session, or (single-use token already spent) only a resume. */
export type Admission = { spent: false; nonce?: string } | { spent: true; nonce: string };

/** The edge's access policy. */
export class AccessPolicy {
  /** Nonces of spent single-use tokens → expiry (s) and the sessions they admitted (resume may reuse them). */
  private readonly spent = new Map<string, { exp: number; sessions: Set<number> }>();
  private readonly publicHosts: Set<string>;

  constructor(readonly config: AccessConfig = {}) {
    if (config.tokenKey !== undefined) checkKey(config.tokenKey);
    if (config.issuerSecret !== undefined && config.tokenKey === undefined)
      throw new AccessError('BadKey', 'an issuer secret needs a token key to sign with');
    const min = EDGE_NODE_DEFAULTS.minSecretLength;
    for (const [name, v] of [
      ['secret', config.secret],
      ['issuer secret', config.issuerSecret],
      ['metrics token', config.metricsToken],
    ] as const) {
      if (v !== undefined && v.length < min)
        throw new AccessError('BadKey', `the ${name} must be at least ${min} characters`);
    }
    this.publicHosts = new Set();
    for (const o of config.publicOrigins ?? []) {
      let u: URL;
      try {
        u = new URL(o);
      } catch {
        throw new AccessError('BadOrigin', `public origin '${o}' is not a URL`);
      }
      if (u.origin !== o.replace(/\/$/, ''))
        throw new AccessError('BadOrigin', `public origin '${o}' must be exactly scheme://host[:port]`);
      this.publicHosts.add(u.hostname.toLowerCase());
    }
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

  /**
   * Single-use tokens: records the token's nonce on its first join. A later join with it is `spent` and may only
   * resume a session it admitted. A shared secret is never spent. Holds per edge node (the store is in memory).
   */
  admit(token: string | undefined, nowS = Math.floor(Date.now() / 1000)): Admission {
    if (!this.config.singleUseTokens || token === undefined || !token.startsWith(TOKEN_PREFIX + '.'))
      return { spent: false };
    const [, exp, nonce] = token.split('.');
    for (const [n, r] of this.spent) if (r.exp + CLOCK_SKEW_S < nowS) this.spent.delete(n);
    if (this.spent.has(nonce)) return { spent: true, nonce };
    this.spent.set(nonce, { exp: Number(exp), sessions: new Set() });
    return { spent: false, nonce };
  }

  /** A join admitted under `nonce` never became a session (its handshake failed): the token is not spent. */
  unadmit(nonce: string): void {
    if (this.spent.get(nonce)?.sessions.size === 0) this.spent.delete(nonce);
  }

  /** Records that a join under `nonce` became session `id` (a fresh join, or a resume of one of its sessions). */
  bindSession(nonce: string, id: number): void {
    this.spent.get(nonce)?.sessions.add(id);
  }

  /** Whether session `id` was admitted under `nonce` (a spent token may resume it). */
  admitted(nonce: string, id: number): boolean {
    return this.spent.get(nonce)?.sessions.has(id) ?? false;
  }

  /**
   * Whether a request's Host header names this edge: a loopback name, an IP literal (a DNS-rebinding page can
   * only ever send its own domain name), or a configured public origin's host. Anything else is refused.
   */
  hostAllowed(host: string | undefined): boolean {
    if (!host) return false;
    let name: string;
    try {
      name = new URL(`http://${host}`).hostname.toLowerCase();
    } catch {
      return false;
    }
    const bare = name.replace(/^\[|\]$/g, '');
    return isLoopbackName(bare) || isIP(bare) !== 0 || this.publicHosts.has(name);
  }

  /**
   * Whether a browser page at `origin` may signal or load the widget. `host` is the request's Host header, used
   * only when it is an IP literal (a LAN page served by this edge at http://192.168.1.5:8080); a domain name in
   * Host is never trusted, since a rebinding page controls both its Origin and its Host.
   */
  originAllowed(origin: string | undefined, host?: string): boolean {
    if (origin === undefined || origin === '') return true; // not a browser: the token decides
    let u: URL;
    try {
      u = new URL(origin);
    } catch {
      return false;
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
    if (isLoopbackHost(u.hostname)) return true;
    if ((this.config.publicOrigins ?? []).some((o) => o.replace(/\/$/, '') === u.origin)) return true;
    if (host !== undefined && isIP(u.hostname.replace(/^\[|\]$/g, '')) !== 0 && u.host === host) return true;
    const list = this.config.allowedOrigins ?? [];
    return list.includes('*') || list.includes(u.origin);
  }

  /** /metrics and the full /healthz: the metrics token, or the join credential, whenever either is set. */
  metricsAllowed(authorization: string | undefined): boolean {
    const m = authorization === undefined ? null : /^Bearer (.+)$/.exec(authorization);
    const bearer = m?.[1];
    const t = this.config.metricsToken;
    if (t !== undefined && bearer !== undefined && constantTimeEqual(bearer, t)) return true;
    if (t === undefined && !this.required) return true;
    return this.required && bearer !== undefined && this.check(bearer) === null;
  }

  /** /score: the join credential as a bearer token, when one is set. */
  bearerAllowed(authorization: string | undefined): boolean {
    if (!this.required) return true;
    const m = authorization === undefined ? null : /^Bearer (.+)$/.exec(authorization);
    return m !== null && this.check(m[1]) === null;
  }

  /** Checks the bearer credential of a POST /token request. */
  issuerAllowed(authorization: string | undefined): boolean {
    const s = this.config.issuerSecret;
    if (s === undefined || authorization === undefined) return false;
    const m = /^Bearer (.+)$/.exec(authorization);
    return m !== null && constantTimeEqual(m[1], s);
  }
}

/** Loopback as browsers see it (`*.localhost` always resolves to loopback in a browser). */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return isLoopbackName(h) || h.endsWith('.localhost');
}

/**
 * Loopback as the operating system sees it, for the bind check: `localhost`, 127.0.0.0/8 and ::1 only (a name
 * under `.localhost` may resolve anywhere through the system resolver).
 */
export function isLoopbackName(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Per-key token buckets (a key: a client address), for joins and issuer-secret guesses. Buckets refill at `rate`
 * per second up to `burst`; idle ones are forgotten so the map stays small.
 */
export class KeyedRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    readonly rate: number,
    readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The bucket of `key`, refilled up to now. */
  private bucket(key: string): { tokens: number; at: number } {
    const t = this.now();
    if (this.buckets.size > 10_000) {
      for (const [k, b] of this.buckets)
        if (t - b.at > (this.burst / this.rate) * 1000) this.buckets.delete(k);
    }
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.rate);
    b.at = t;
    this.buckets.set(key, b);
    return b;
  }

  /** Takes one token for `key`; false when the key is over its rate. */
  take(key: string): boolean {
    if (!Number.isFinite(this.rate)) return true;
    const b = this.bucket(key);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Seconds until `key` has a token again (0: it has one now), for Retry-After. */
  retryAfterS(key: string): number {
    if (!Number.isFinite(this.rate)) return 0;
    const b = this.bucket(key);
    return b.tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - b.tokens) / this.rate));
  }
}
