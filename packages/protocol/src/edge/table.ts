/**
 * The sessions of one edge by id, live and recently lost (held for a resume).
 */
import type { LmSession } from '../lm.js';
import { constantTimeEqual } from '../wire/resume.js';
import type { EdgeSession, ResumeLookup } from './session.js';

/**
 * The sessions of one edge by id, live and recently lost: a session whose connection closed is held for
 * `holdMs` so its device can resume it with the secret, then disposed. A device that resumes while its old
 * connection still looks alive takes the session over and the old connection is closed.
 */
export class SessionTable {
  private readonly live = new Map<number, { edge: EdgeSession; close: () => void }>();
  private readonly held = new Map<number, { edge: EdgeSession; timer: ReturnType<typeof setTimeout> }>();
  private shut = false;

  constructor(
    readonly holdMs: number,
    private readonly dispose: (t: LmSession) => void,
    /** Most sessions held at once (each keeps its KV cache); a new one evicts the oldest. */
    readonly maxHeld = Infinity,
  ) {}

  /** Whether `id` names a live or held session (new ids must not). */
  has(id: number): boolean {
    return this.live.has(id) || this.held.has(id);
  }

  get liveCount(): number {
    return this.live.size;
  }

  get heldCount(): number {
    return this.held.size;
  }

  add(edge: EdgeSession, close: () => void): void {
    this.live.set(edge.id, { edge, close });
  }

  /** The connection of a session closed: hold it for a resume, or dispose of it. */
  lost(edge: EdgeSession): void {
    if (this.live.get(edge.id)?.edge !== edge) return; // already taken over
    this.live.delete(edge.id);
    edge.close();
    if (this.holdMs > 0 && this.maxHeld > 0 && !this.shut && edge.settings && edge.resumeSecret) {
      // Map order is age order: the oldest held session makes room.
      while (this.held.size >= this.maxHeld) {
        const oldest = this.held.keys().next().value as number;
        clearTimeout(this.held.get(oldest)!.timer);
        this.drop(oldest);
      }
      const timer = setTimeout(() => this.drop(edge.id), this.holdMs);
      (timer as { unref?: () => void }).unref?.();
      this.held.set(edge.id, { edge, timer });
    } else {
      this.disposeOf(edge);
    }
  }

  private drop(id: number): void {
    const h = this.held.get(id);
    if (!h) return;
    this.held.delete(id);
    this.disposeOf(h.edge);
  }

  private disposeOf(edge: EdgeSession): void {
    void edge.release().then((h) => {
      if (h) this.dispose(h.target);
    });
  }

  /** Implements EdgeSessionOptions.resume. */
  async claim(id: number, secret: string): Promise<ResumeLookup> {
    const h = this.held.get(id);
    const l = this.live.get(id);
    const edge = h?.edge ?? l?.edge;
    if (!edge || !edge.resumeSecret) return 'unknown';
    if (!constantTimeEqual(edge.resumeSecret, secret)) return 'denied';
    if (h) {
      clearTimeout(h.timer);
      this.held.delete(id);
    } else if (l) {
      this.live.delete(id);
      l.close();
    }
    return (await edge.release()) ?? 'unknown';
  }

  /** Disposes every held session; with `shutdown`, sessions lost from now on are disposed at once. */
  clear(shutdown = false): void {
    if (shutdown) this.shut = true;
    for (const id of [...this.held.keys()]) {
      clearTimeout(this.held.get(id)!.timer);
      this.drop(id);
    }
  }
}
