/**
 * Resuming a session after its connection dropped: the history digest both sides compare, the resume claim a
 * device sends in its hello, and the secret that proves the claim.
 */
import { ProtocolError, ProtocolErrorCode } from '../errors.js';

/** What a device sends in its hello to resume a session. */
export interface ResumeClaim {
  sessionId: number;
  secret: string;
  committed: number;
}

/** What the welcome says about a resumed session: the prefix the edge holds and its digest. */
export interface ResumeAnswer {
  held: number;
  digest: number;
}

/** FNV-1a over the first n tokens: both sides compute it to confirm a shared history prefix. */
export function historyDigest(tokens: readonly number[], n: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < n; i++) {
    let t = tokens[i];
    for (let k = 0; k < 4; k++) {
      h = Math.imul(h ^ (t & 0xff), 0x01000193) >>> 0;
      t >>>= 8;
    }
  }
  return h >>> 0;
}

export function randomHex(bytes: number): string {
  const a = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(a);
  return Array.from(a, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function parseResume(x: unknown): ResumeClaim | null {
  if (x === undefined || x === null) return null;
  const r = x as Record<string, unknown>;
  const ok =
    typeof x === 'object' &&
    Number.isSafeInteger(r.sessionId) &&
    (r.sessionId as number) >= 1 &&
    typeof r.secret === 'string' &&
    /^[0-9a-f]{32}$/.test(r.secret) &&
    Number.isSafeInteger(r.committed) &&
    (r.committed as number) >= 0;
  if (!ok)
    throw new ProtocolError(ProtocolErrorCode.BadSettings, 'resume needs {sessionId, secret, committed}');
  return { sessionId: r.sessionId as number, secret: r.secret as string, committed: r.committed as number };
}

/** Compares secrets without an early exit (no timing oracle). */
export function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return d === 0;
}
