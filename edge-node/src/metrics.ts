/** Prometheus text exposition of the edge's counters (vLLM's spec-decode definitions). */
import type { BatchStats, EdgeSessionMetrics } from '@dssd/protocol';

const BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

export class Histogram {
  readonly counts = new Array<number>(BUCKETS_MS.length + 1).fill(0);
  sum = 0;
  n = 0;
  observe(ms: number): void {
    let i = BUCKETS_MS.findIndex((b) => ms <= b);
    if (i < 0) i = BUCKETS_MS.length;
    this.counts[i]++;
    this.sum += ms;
    this.n++;
  }
  render(name: string, help: string, labels = ''): string[] {
    const out = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
    let cum = 0;
    const l = labels ? `${labels},` : '';
    BUCKETS_MS.forEach((b, i) => {
      cum += this.counts[i];
      out.push(`${name}_bucket{${l}le="${b / 1000}"} ${cum}`);
    });
    cum += this.counts[BUCKETS_MS.length];
    out.push(
      `${name}_bucket{${l}le="+Inf"} ${cum}`,
      `${name}_sum${labels ? `{${labels}}` : ''} ${this.sum / 1000}`,
    );
    out.push(`${name}_count${labels ? `{${labels}}` : ''} ${this.n}`);
    return out;
  }
}

/** Totals of closed sessions plus the live ones, rendered on each scrape. */
export class EdgeMetrics {
  sessionsTotal = 0;
  sessionsRefused = 0;
  readonly errors = new Map<string, number>();
  readonly verify = new Histogram();
  readonly arStep = new Histogram();
  private closed = { rounds: 0, forwardPasses: 0, tokensScored: 0, generated: 0, fullRequests: 0 };
  private closedSpec = { drafts: 0, drafted: 0, accepted: 0, perPos: [] as number[] };
  bytesUp = 0;
  bytesDown = 0;

  countError(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
  }

  fold(m: EdgeSessionMetrics, bytes: { up: number; down: number }): void {
    this.closed.rounds += m.rounds;
    this.closed.forwardPasses += m.forwardPasses;
    this.closed.tokensScored += m.tokensScored;
    this.closed.generated += m.generatedTokens;
    this.closed.fullRequests += m.fullRequests;
    const s = m.stats;
    this.closedSpec.drafts += s.drafts;
    this.closedSpec.drafted += s.draftedTokens;
    this.closedSpec.accepted += s.acceptedTokens;
    s.acceptedAtPosition.forEach(
      (v, i) => (this.closedSpec.perPos[i] = (this.closedSpec.perPos[i] ?? 0) + v),
    );
    this.bytesUp += bytes.up;
    this.bytesDown += bytes.down;
  }

  render(
    live: { m: EdgeSessionMetrics; up: number; down: number }[],
    gauges: {
      pending: number;
      held: number;
      reassemblyBytes: number;
      scoreQueued: number;
      logSuppressed: number;
    } = { pending: 0, held: 0, reassemblyBytes: 0, scoreQueued: 0, logSuppressed: 0 },
  ): string {
    const t = { ...this.closed };
    const sp = { ...this.closedSpec, perPos: [...this.closedSpec.perPos] };
    let up = this.bytesUp;
    let down = this.bytesDown;
    for (const { m, up: u, down: d } of live) {
      t.rounds += m.rounds;
      t.forwardPasses += m.forwardPasses;
      t.tokensScored += m.tokensScored;
      t.generated += m.generatedTokens;
      t.fullRequests += m.fullRequests;
      sp.drafts += m.stats.drafts;
      sp.drafted += m.stats.draftedTokens;
      sp.accepted += m.stats.acceptedTokens;
      m.stats.acceptedAtPosition.forEach((v, i) => (sp.perPos[i] = (sp.perPos[i] ?? 0) + v));
      up += u;
      down += d;
    }
    const lines: string[] = [];
    const series = (type: 'counter' | 'gauge') => (name: string, help: string, v: number) =>
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name} ${v}`);
    const counter = series('counter');
    const gauge = series('gauge');
    gauge('dssd_sessions_active', 'Sessions connected now.', live.length);
    gauge(
      'dssd_sessions_pending',
      'WebRTC handshakes in progress (each holds a session slot).',
      gauges.pending,
    );
    gauge('dssd_sessions_held', 'Sessions held for a resume after their connection dropped.', gauges.held);
    gauge(
      'dssd_reassembly_bytes',
      'Memory held for partially received frames, edge-wide.',
      gauges.reassemblyBytes,
    );
    gauge('dssd_score_queued', '/score requests running or waiting.', gauges.scoreQueued);
    counter(
      'dssd_log_suppressed_total',
      'Per-peer error log lines suppressed by sampling (every error is still counted).',
      gauges.logSuppressed,
    );
    counter('dssd_sessions_total', 'Sessions started.', this.sessionsTotal);
    counter('dssd_sessions_refused_total', 'Sessions refused (limits, access).', this.sessionsRefused);
    counter('dssd_rounds_total', 'Draft-verify rounds.', t.rounds);
    counter(
      'dssd_forward_passes_total',
      'Target forward passes (verify passes and ar steps).',
      t.forwardPasses,
    );
    counter('dssd_tokens_scored_total', 'Tokens fed through the target.', t.tokensScored);
    counter('dssd_ar_generated_tokens_total', 'Tokens generated in edge-only (ar) sessions.', t.generated);
    counter('dssd_full_requests_total', 'Full P_j requests after every candidate failed.', t.fullRequests);
    counter(
      'dssd_spec_decode_num_drafts_total',
      'Rounds with at least one draft token (vLLM num_drafts).',
      sp.drafts,
    );
    counter('dssd_spec_decode_num_draft_tokens_total', 'Draft tokens proposed.', sp.drafted);
    counter('dssd_spec_decode_num_accepted_tokens_total', 'Draft tokens accepted.', sp.accepted);
    lines.push(
      '# HELP dssd_spec_decode_num_accepted_tokens_per_pos_total Accepted draft tokens by position (1-based).',
      '# TYPE dssd_spec_decode_num_accepted_tokens_per_pos_total counter',
    );
    sp.perPos.forEach((v, i) =>
      lines.push(`dssd_spec_decode_num_accepted_tokens_per_pos_total{position="${i + 1}"} ${v}`),
    );
    counter('dssd_bytes_up_total', 'Application bytes received from devices (chunk headers included).', up);
    counter('dssd_bytes_down_total', 'Application bytes sent to devices (chunk headers included).', down);
    lines.push('# HELP dssd_errors_total Error frames sent, by code.', '# TYPE dssd_errors_total counter');
    for (const [code, n] of this.errors) lines.push(`dssd_errors_total{code="${code}"} ${n}`);
    lines.push(
      ...this.verify.render('dssd_verify_latency_seconds', 'Verify pass latency (target forward + kernel).'),
    );
    lines.push(...this.arStep.render('dssd_ar_step_latency_seconds', 'Edge-only decoding step latency.'));
    return lines.join('\n') + '\n';
  }
}

/** The batch scheduler's counters (`--batch`), appended to /metrics. */
export function renderBatchMetrics(b: BatchStats): string {
  const lines: string[] = [];
  const c = (name: string, help: string, v: number) =>
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${v}`);
  c('dssd_batch_passes_total', 'Batched target passes run.', b.passes);
  c('dssd_batch_items_total', 'Session requests served by batched passes.', b.items);
  c('dssd_batch_tokens_total', 'New tokens scored by batched passes.', b.tokens);
  c(
    'dssd_batch_overruns_total',
    'EMULATED passes whose real work took longer than the emulated time.',
    b.overruns,
  );
  return lines.join('\n') + '\n';
}
