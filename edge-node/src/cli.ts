/**
 * `dssd` command line: `serve` runs an edge node; `generate` runs a Node device against an edge;
 * `fidelity` checks a mode/codec's output law against the target's exact probabilities.
 */
import { parseArgs } from 'node:util';
import {
  DOWNLINK_CODECS,
  MODES,
  ProtocolError,
  type DeviceOptions,
  type DownlinkCodec,
  type Mode,
} from '@dssd/protocol';
import { EdgeNode } from './server.js';
import { Logger, type LogLevel } from './log.js';
import { connectNodeDevice } from './device.js';
import { fidelityTest } from './fidelity.js';
import { isLoopbackHost, issueJoinToken, type AccessConfig } from './access.js';

const HELP = `dssd — lossless device–edge LLM inference by Distributed Split Speculative Decoding

Usage:
  dssd serve [options]                 start an edge node (target model, web app, signaling)
  dssd generate --prompt TEXT [opts]   generate with a Node device (draft model) against an edge
  dssd fidelity --prompt TEXT [opts]   test a mode/codec's output law against the target's exact probabilities
  dssd token --key KEY [--ttl S]       print a signed join token (for an edge started with --token-key KEY)
  dssd fuzz [--frames N] [--channel-frames N] [--seed S] [--json]
                                       hostile input: mutated frames in-process and over a data channel
  dssd load [--devices N] [--tokens T] [--json]
                                       N concurrent devices against an edge of its own (default 16)

serve options:
  --model DIR            target model folder (Hugging Face-style ONNX decoder; default: embedded target)
  --draft DIR            draft model folder served to browsers (default: embedded draft)
  --port N               port (default 8080, or $PORT)
  --host ADDR            bind address (default 127.0.0.1: this machine only; 0.0.0.0 for the LAN, which needs
                           --secret or --token-key, or an explicit --insecure-open)
  --max-sessions N       concurrent sessions (default 64)
  --max-context N        longest history per session (default: the model's context)
  --max-gamma N          largest draft length accepted (default 16)
  --modes LIST           allowed modes, comma-separated (default ar,dsd,dssd)
  --codecs LIST          allowed downlink codecs (default auto,f32,f16,sparse,topk,candidates)
  --ice-servers LIST     STUN/TURN URLs, comma-separated, or a JSON array of RTCIceServer (devices beyond the LAN)
  --tls-cert FILE        TLS certificate (a page reached at a LAN address over plain http is not a secure
  --tls-key FILE           context: no WebGPU, crypto.subtle or SharedArrayBuffer there)
  --target-ms A,B        pad each target forward pass to A + B·tokens ms (emulates a larger model; benchmarks)
  --log-level LEVEL      debug|info|warn|error|silent (default info)

access (devices pass the credential as --token, the page's ?token=, or the widget's token attribute):
  --secret S             shared secret every device must present ($DSSD_SECRET)
  --token-key KEY        accept signed, expiring join tokens made with KEY (>= 16 chars; $DSSD_TOKEN_KEY); issue
                           them with 'dssd token --key KEY --ttl 600', or from your backend via POST /token
  --issuer-secret S      enables POST /token?ttl=S on this edge for 'Authorization: Bearer S' ($DSSD_ISSUER_SECRET)
  --allow-origin LIST    web origins (scheme://host[:port], comma-separated, or *) whose pages may embed the widget
                           and signal; the edge's own pages and localhost pages always may
  --insecure-open        bind beyond localhost without any credential (anyone who reaches the port may join)

limits (each refusal is a typed error frame, counted in /metrics as dssd_errors_total{code}):
  --max-prompt N         tokens in one turn (default 65536)       --max-new-tokens N  per turn (default 65536)
  --max-frame-bytes N    largest reassembled frame (default 64 MiB)
  --max-rounds N         verify rounds per second per session (default 1000)
  --idle-timeout S       close sessions silent for S seconds (default 300)
  --resume-hold S        keep a dropped session's KV cache S seconds for its device to resume (default 60)

generate / fidelity options:
  --edge URL             edge node (default http://localhost:8080)
  --prompt TEXT          prompt text
  --max-tokens N         new tokens (default 64)            [generate]
  --tokens T --samples N tokens per sample and samples       [fidelity; defaults 2 and 1000]
  --mode ar|dsd|dssd     (default dssd)
  --codec C              auto|f32|f16|sparse|topk|candidates (default auto)
  --gamma G|auto         draft length (default 4; auto adapts it per round)
  --temperature T --top-k K --top-p P --seed S              sampling (defaults 1, 0 = off, 1 = off, none)
  --draft-temperature T  the draft's own temperature (default: the target's)
  --dsd-precision f32|f16  DSD uplink precision (default f32)
  --draft DIR            draft model folder (default: embedded draft)
  --json                 print one JSON object as the last line
`;

function fail(msg: string): never {
  process.stderr.write(`dssd: ${msg}\n(run 'dssd --help' for usage)\n`);
  process.exit(2);
}

function num(v: string | undefined, name: string, dflt: number, int = false): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isFinite(x) || (int && !Number.isInteger(x)))
    fail(`--${name} must be a${int ? 'n integer' : ' number'}, got '${v}'`);
  return x;
}

function list<T extends string>(v: string | undefined, allowed: readonly T[], name: string): T[] | undefined {
  if (v === undefined) return undefined;
  const xs = v.split(',').map((s) => s.trim()) as T[];
  for (const x of xs) if (!allowed.includes(x)) fail(`--${name}: '${x}' is not one of ${allowed.join(', ')}`);
  return xs;
}

export function parseIceServers(v: string | undefined): RTCIceServer[] {
  if (!v) return [];
  if (v.trim().startsWith('[')) {
    try {
      const a = JSON.parse(v) as RTCIceServer[];
      if (!Array.isArray(a)) throw new Error('not an array');
      return a;
    } catch (e) {
      fail(`--ice-servers is not a JSON array of RTCIceServer: ${(e as Error).message}`);
    }
  }
  return v.split(',').map((urls) => ({ urls: urls.trim() }));
}

const deviceFlags = {
  edge: { type: 'string' },
  prompt: { type: 'string' },
  'max-tokens': { type: 'string' },
  tokens: { type: 'string' },
  samples: { type: 'string' },
  mode: { type: 'string' },
  codec: { type: 'string' },
  gamma: { type: 'string' },
  temperature: { type: 'string' },
  'draft-temperature': { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
  'dsd-precision': { type: 'string' },
  draft: { type: 'string' },
  json: { type: 'boolean' },
  token: { type: 'string' },
  'plant-bug': { type: 'string' },
} as const;

function deviceSettings(v: Record<string, string | boolean | undefined>): {
  settings: DeviceOptions['settings'];
  adaptive: boolean;
} {
  const mode = (v.mode ?? 'dssd') as Mode;
  if (!MODES.includes(mode)) fail(`--mode must be one of ${MODES.join(', ')}`);
  const codec = (v.codec ?? 'auto') as DownlinkCodec;
  if (!DOWNLINK_CODECS.includes(codec)) fail(`--codec must be one of ${DOWNLINK_CODECS.join(', ')}`);
  const adaptive = v.gamma === 'auto';
  const gamma = adaptive ? 8 : num(v.gamma as string | undefined, 'gamma', 4, true);
  const temperature = num(v.temperature as string | undefined, 'temperature', 1);
  const sampling = {
    temperature,
    topK: num(v['top-k'] as string | undefined, 'top-k', 0, true),
    topP: num(v['top-p'] as string | undefined, 'top-p', 1),
  };
  const dt = v['draft-temperature'] as string | undefined;
  const prec = (v['dsd-precision'] ?? 'f32') as 'f32' | 'f16';
  if (prec !== 'f32' && prec !== 'f16') fail('--dsd-precision must be f32 or f16');
  const settings: DeviceOptions['settings'] = {
    mode,
    codec,
    gamma: mode === 'ar' ? 0 : gamma,
    sampling,
    draftSampling:
      dt === undefined ? sampling : { ...sampling, temperature: num(dt, 'draft-temperature', 1) },
    dsdPrecision: prec,
  };
  if (v.seed !== undefined) settings.seed = num(v.seed as string, 'seed', 0, true);
  return { settings, adaptive };
}

async function serve(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      draft: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'max-sessions': { type: 'string' },
      'max-context': { type: 'string' },
      'max-gamma': { type: 'string' },
      modes: { type: 'string' },
      codecs: { type: 'string' },
      'ice-servers': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'target-ms': { type: 'string' },
      'log-level': { type: 'string' },
      'plant-bug': { type: 'string' },
      secret: { type: 'string' },
      'token-key': { type: 'string' },
      'issuer-secret': { type: 'string' },
      'allow-origin': { type: 'string' },
      'insecure-open': { type: 'boolean' },
      'max-prompt': { type: 'string' },
      'max-new-tokens': { type: 'string' },
      'max-frame-bytes': { type: 'string' },
      'max-rounds': { type: 'string' },
      'idle-timeout': { type: 'string' },
      'resume-hold': { type: 'string' },
    },
  });
  const level = (v['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level))
    fail('--log-level must be debug|info|warn|error|silent');
  if (!!v['tls-cert'] !== !!v['tls-key']) fail('--tls-cert and --tls-key go together');
  let targetDelayMs: { a: number; b: number } | undefined;
  if (v['target-ms']) {
    const [a, b] = v['target-ms'].split(',').map(Number);
    if (!Number.isFinite(a) || !Number.isFinite(b ?? 0)) fail('--target-ms takes A,B (ms and ms per token)');
    targetDelayMs = { a, b: b ?? 0 };
  }
  const limits: Record<string, unknown> = {};
  if (v['max-context']) limits.maxContext = num(v['max-context'], 'max-context', 0, true);
  if (v['max-gamma']) limits.maxGamma = num(v['max-gamma'], 'max-gamma', 16, true);
  const modes = list(v.modes, MODES, 'modes');
  if (modes) limits.allowedModes = modes;
  const codecs = list(v.codecs, DOWNLINK_CODECS, 'codecs');
  if (codecs) limits.allowedCodecs = codecs;
  if (v['max-prompt']) limits.maxPromptTokens = num(v['max-prompt'], 'max-prompt', 0, true);
  if (v['max-new-tokens']) limits.maxNewTokens = num(v['max-new-tokens'], 'max-new-tokens', 0, true);
  if (v['max-frame-bytes']) limits.maxFrameBytes = num(v['max-frame-bytes'], 'max-frame-bytes', 0, true);
  if (v['max-rounds']) limits.maxRoundsPerSecond = num(v['max-rounds'], 'max-rounds', 0);
  const access: AccessConfig = {};
  const secret = v.secret ?? process.env.DSSD_SECRET;
  const tokenKey = v['token-key'] ?? process.env.DSSD_TOKEN_KEY;
  const issuer = v['issuer-secret'] ?? process.env.DSSD_ISSUER_SECRET;
  if (secret) access.secret = secret;
  if (tokenKey) access.tokenKey = tokenKey;
  if (issuer) access.issuerSecret = issuer;
  const host = v.host ?? '127.0.0.1';
  if (!isLoopbackHost(host) && !secret && !tokenKey && !v['insecure-open']) {
    fail(
      `--host ${host} exposes the edge beyond this machine: require a credential with --secret S or ` +
        `--token-key KEY (see 'dssd token'), or pass --insecure-open to allow anyone`,
    );
  }
  const allowedOrigins = v['allow-origin']
    ?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  const log = new Logger(level);
  const node = await EdgeNode.start({
    access,
    allowedOrigins,
    idleTimeoutMs: v['idle-timeout'] ? 1000 * num(v['idle-timeout'], 'idle-timeout', 300) : undefined,
    resumeHoldMs: v['resume-hold'] ? 1000 * num(v['resume-hold'], 'resume-hold', 60) : undefined,
    modelDir: v.model,
    draftDir: v.draft,
    port: num(v.port ?? process.env.PORT, 'port', 8080, true),
    host,
    maxSessions: num(v['max-sessions'], 'max-sessions', 64, true),
    limits,
    iceServers: parseIceServers(v['ice-servers']),
    tls: v['tls-cert'] ? { cert: v['tls-cert'], key: v['tls-key']! } : undefined,
    targetDelayMs,
    plantedBug: v['plant-bug'] === 'inverted-ratio' ? 'inverted-ratio' : undefined,
    log,
  });
  log.info('edge node ready', {
    url: node.url,
    model: node.model.config.name,
    vocabSize: node.model.config.vocabSize,
    emulatedTargetMs: targetDelayMs,
  });
  process.stdout.write(
    `\n  dssd edge node serving ${node.model.config.name}\n  Open ${node.url} in a browser.\n\n`,
  );
  const stop = () => void node.close().then(() => process.exit(0));
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

async function generate(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: deviceFlags });
  if (v.prompt === undefined) fail('--prompt is required');
  const { settings, adaptive } = deviceSettings(v);
  const maxTokens = num(v['max-tokens'], 'max-tokens', 64, true);
  const dev = await connectNodeDevice({
    edge: v.edge ?? 'http://localhost:8080',
    settings,
    draftDir: v.draft,
    adaptiveGamma: adaptive,
    token: v.token,
  });
  const tok = dev.draft.tokenizer;
  const stream = tok.decodeStream();
  const ids = tok.encode(v.prompt);
  if (ids.length === 0) fail('the prompt encodes to no tokens');
  if (!v.json) process.stdout.write(v.prompt);
  const r = await dev.session.generate(ids, {
    maxNewTokens: maxTokens,
    onTokens: (ev) => {
      if (!v.json) process.stdout.write(stream.push(ev.tokens));
    },
  });
  if (!v.json) process.stdout.write(stream.flush() + '\n');
  const ts = await dev.session.transport.channel.transportStats?.();
  const s = r.stats;
  const out = {
    text: tok.decode(r.tokens),
    tokens: r.tokens,
    mode: dev.session.settings.mode,
    codec: dev.session.settings.codec,
    done: r.done,
    stats: {
      rounds: s.rounds,
      draftedTokens: s.draftedTokens,
      acceptedTokens: s.acceptedTokens,
      acceptancePerPosition: s.acceptancePerPosition,
      meanAcceptanceLength: s.meanAcceptanceLength,
      uplinkBytes: s.uplinkBytes,
      downlinkBytes: s.downlinkBytes,
      transportBytesUp: ts?.bytesSent,
      transportBytesDown: ts?.bytesReceived,
      messages: s.messagesUp + s.messagesDown,
      fallbacks: s.fallbacks,
      llmForwardPasses: s.llmForwardPasses,
      tokensPerSecond: s.tokensPerSecond,
      generatedTokens: s.generatedTokens,
      draftMs: s.draftMs,
      waitMs: s.waitMs,
      gammas: s.gammas,
    },
  };
  if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
  else {
    process.stderr.write(
      `\n${s.generatedTokens} tokens in ${(s.wallMs / 1000).toFixed(2)} s (${s.tokensPerSecond.toFixed(1)} tok/s), ` +
        `mode ${out.mode}${out.mode === 'dssd' ? `/${out.codec}` : ''}, mean acceptance length ${s.meanAcceptanceLength.toFixed(2)}, ` +
        `up ${(s.uplinkBytes / Math.max(1, s.generatedTokens)).toFixed(1)} B/token, down ${(s.downlinkBytes / Math.max(1, s.generatedTokens)).toFixed(1)} B/token\n`,
    );
  }
  dev.close();
}

export async function runFidelity(o: {
  edge: string;
  prompt: string;
  tokens: number;
  samples: number;
  settings: DeviceOptions['settings'];
  draftDir?: string;
  plantedBug?: 'no-max';
  onProgress?: (done: number, total: number) => void;
}) {
  const dev = await connectNodeDevice({
    edge: o.edge,
    settings: o.settings,
    draftDir: o.draftDir,
    plantedBug: o.plantedBug,
  });
  try {
    const ids = dev.draft.tokenizer.encode(o.prompt);
    if (ids.length === 0) throw new Error('the prompt encodes to no tokens');
    const P = ids.length;
    const seqs: number[][] = [];
    for (let i = 0; i < o.samples; i++) {
      if (i === 0) await dev.session.generate(ids, { maxNewTokens: o.tokens });
      else {
        dev.session.rewind(P - 1);
        await dev.session.generate([ids[P - 1]], { maxNewTokens: o.tokens });
      }
      seqs.push(dev.session.history.slice(P, P + o.tokens));
      if (o.onProgress && (i + 1) % 100 === 0) o.onProgress(i + 1, o.samples);
    }
    const res = await fetch(new URL('/score', o.edge.replace(/^ws/, 'http')), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: ids, continuations: seqs, sampling: dev.session.settings.sampling }),
    });
    const body = (await res.json()) as { first: number[]; scores: [number, number][][]; error?: string };
    if (!res.ok) throw new Error(`the edge could not score: ${body.error}`);
    const report = fidelityTest(
      body.scores,
      body.first,
      seqs.map((s) => s[0]),
    );
    return { ...report, mode: dev.session.settings.mode, codec: dev.session.settings.codec };
  } finally {
    dev.close();
  }
}

async function fidelity(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({ args: argv, options: deviceFlags });
  if (v.prompt === undefined) fail('--prompt is required');
  const { settings } = deviceSettings(v);
  const t0 = performance.now();
  const rep = await runFidelity({
    edge: v.edge ?? 'http://localhost:8080',
    prompt: v.prompt,
    tokens: num(v.tokens, 'tokens', 2, true),
    samples: num(v.samples, 'samples', 1000, true),
    settings,
    draftDir: v.draft,
    plantedBug: v['plant-bug'] === 'no-max' ? 'no-max' : undefined,
    onProgress: (d, n) => process.stderr.write(`\r  ${d}/${n} samples`),
  });
  process.stderr.write('\n');
  if (v.json)
    process.stdout.write(JSON.stringify({ ...rep, seconds: (performance.now() - t0) / 1000 }) + '\n');
  else
    process.stdout.write(
      `${rep.mode}${rep.mode === 'dssd' ? `/${rep.codec}` : ''}: ${rep.samples} samples, ${rep.tokens} tokens: ` +
        `KS D = ${rep.ks.statistic.toFixed(4)} (p = ${rep.ks.pValue.toPrecision(3)}), chi-square = ${rep.chiSquare.statistic.toFixed(1)} ` +
        `on ${rep.chiSquare.dof} dof (p = ${rep.chiSquare.pValue.toPrecision(3)}); combined p = ${rep.pValue.toPrecision(3)}\n`,
    );
}

async function fuzzCommand(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      frames: { type: 'string' },
      'channel-frames': { type: 'string' },
      seed: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const { fuzzInProcess, fuzzDataChannel } = await import('./fuzz.js');
  const say = (m: string) => process.stderr.write(m + '\n');
  const frames = num(v.frames, 'frames', 1_000_000, true);
  const seed = num(v.seed, 'seed', 1, true);
  const inproc = await fuzzInProcess({
    frames,
    seed,
    onProgress: (d, r) =>
      process.stderr.write(`\r  in-process: ${d} frames, heap ${r.heapPeakMb.toFixed(1)} MiB peak   `),
  });
  say(
    `\nin-process: ${inproc.frames} frames in ${inproc.seconds.toFixed(1)} s, ${inproc.accepted} accepted, ` +
      `errors ${JSON.stringify(inproc.errors)}, bad replies ${inproc.badReplies}, well-behaved ` +
      `${inproc.goodExact}/${inproc.goodRuns} exact, heap ${inproc.heapStartMb.toFixed(1)} → ${inproc.heapPeakMb.toFixed(1)} MiB peak`,
  );
  // Over a real data channel into an edge node, while a well-behaved device keeps generating.
  const node = await EdgeNode.start({ port: 0, log: new Logger('silent'), maxSessions: 16 });
  const { createRequire } = await import('node:module');
  const require = createRequire(import.meta.url);
  const WebSocket = (await import('ws')).default;
  const greedy = { temperature: 0, topK: 0, topP: 1 };
  const prompt = 'The jury said';
  const good = async (mode: 'ar' | 'dssd') => {
    const d = await connectNodeDevice({ edge: node.url, settings: { mode, gamma: 4, sampling: greedy } });
    try {
      const out: number[] = [];
      for (let k = 0; k < 3; k++) {
        if (k > 0) d.session.rewind(0);
        out.push(
          ...(await d.session.generate(d.draft.tokenizer.encode(prompt), { maxNewTokens: 24 })).tokens,
          -1,
        );
      }
      return out;
    } finally {
      d.close();
    }
  };
  const ref = await good('ar');
  const [chan, during] = await Promise.all([
    fuzzDataChannel({
      url: node.url,
      frames: num(v['channel-frames'], 'channel-frames', 20_000, true),
      seed: seed + 1,
      model: node.identity,
      WebSocket,
      wrtc: require('@roamhq/wrtc'),
    }),
    good('dssd'),
  ]);
  const after = await good('dssd');
  const healthy = (await fetch(node.url + '/healthz')).ok;
  const wellBehaved =
    JSON.stringify(during) === JSON.stringify(ref) && JSON.stringify(after) === JSON.stringify(ref);
  const maxRssMb = process.resourceUsage().maxRSS / 1024;
  await node.close();
  say(
    `data channel: ${chan.frames} frames (${chan.rawMessages} raw) in ${chan.seconds.toFixed(1)} s, ${chan.replies} replies, ` +
      `bad replies ${chan.badReplies}; signaling attacks refused ${chan.signalingRefused}/${chan.signalingAttacks}; ` +
      `well-behaved session exact: ${wellBehaved}; edge healthy: ${healthy}; peak RSS ${maxRssMb.toFixed(0)} MiB`,
  );
  const out = {
    framesInProcess: inproc.frames,
    framesDataChannel: chan.frames,
    badReplies: inproc.badReplies + chan.badReplies,
    errors: inproc.errors,
    wellBehaved: wellBehaved && inproc.goodExact === inproc.goodRuns,
    healthy,
    signalingAttacks: chan.signalingAttacks,
    signalingRefused: chan.signalingRefused,
    heapPeakMb: inproc.heapPeakMb,
    peakRssMb: maxRssMb,
    seconds: inproc.seconds + chan.seconds,
  };
  if (v.json) process.stdout.write(JSON.stringify(out) + '\n');
  if (!out.wellBehaved || !healthy || out.badReplies > 0 || chan.signalingRefused < chan.signalingAttacks)
    process.exitCode = 1;
}

async function loadCommand(argv: string[]): Promise<void> {
  const { values: v } = parseArgs({
    args: argv,
    options: { devices: { type: 'string' }, tokens: { type: 'string' }, json: { type: 'boolean' } },
  });
  const { runLoad } = await import('./load.js');
  const r = await runLoad({
    devices: num(v.devices, 'devices', 16, true),
    maxNewTokens: num(v.tokens, 'tokens', 32, true),
    log: (m) => process.stderr.write(m + '\n'),
  });
  process.stderr.write(
    `${r.devices} devices: ${r.tokens} tokens in ${r.rounds} rounds over ${r.wallS.toFixed(2)} s → ` +
      `${r.roundsPerSecond.toFixed(1)} rounds/s; round latency p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms; ` +
      `edge peak RSS ${r.peakRssMb.toFixed(0)} MiB; errors ${r.errors}, cross-talk ${r.crossTalk}, near-ties ${r.nearTies}\n`,
  );
  for (const m of r.errorMessages) process.stderr.write(`  ${m}\n`);
  const { errorMessages: _e, ...rest } = r;
  void _e;
  if (v.json) process.stdout.write(JSON.stringify(rest) + '\n');
  if (r.errors > 0 || r.crossTalk > 0) process.exitCode = 1;
}

/** The WebRTC stack keeps handles open after the peer closes; leave once output is flushed. */
function exitSoon(): void {
  setTimeout(() => process.exit(process.exitCode ?? 0), 50);
}

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve':
      case 'start':
        return await serve(rest);
      case 'generate':
        await generate(rest);
        return exitSoon();
      case 'fidelity':
        await fidelity(rest);
        return exitSoon();
      case 'fuzz':
        await fuzzCommand(rest);
        return exitSoon();
      case 'load':
        await loadCommand(rest);
        return exitSoon();
      case 'token': {
        const { values: v } = parseArgs({
          args: rest,
          options: { key: { type: 'string' }, ttl: { type: 'string' } },
        });
        const key = v.key ?? process.env.DSSD_TOKEN_KEY;
        if (!key)
          fail('--key KEY (or $DSSD_TOKEN_KEY) is required: the same key the edge has as --token-key');
        process.stdout.write(issueJoinToken(key, num(v.ttl, 'ttl', 600, true)) + '\n');
        return;
      }
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(HELP);
        return;
      default:
        fail(`unknown command '${cmd}'`);
    }
  } catch (e) {
    if (e instanceof ProtocolError) fail(`${e.remote ? 'the edge said: ' : ''}${e.message} [${e.code}]`);
    if (
      e instanceof TypeError &&
      /parseArgs|Unknown option|unexpected argument/i.test(String((e as { code?: string }).code ?? e.message))
    )
      fail(e.message);
    if ((e as { code?: string }).code?.startsWith?.('ERR_PARSE_ARGS')) fail((e as Error).message);
    fail((e as Error).message);
  }
}
