/**
 * `dssd` command line: `serve` runs an edge node; `generate` runs a Node device against an edge;
 * `fidelity` checks a mode/codec's output law against the target's exact probabilities.
 */
import { parseArgs } from 'node:util';
import {
  DEFAULT_EDGE_LIMITS,
  DOWNLINK_CODECS,
  EDGE_NODE_DEFAULTS,
  GAMMA,
  MODES,
  ProtocolError,
  SCORE_LIMITS,
  SETTING_SPECS,
  TARGET_COST_PRESETS,
  WEBRTC_STACKS,
  BATCH_COST_PRESETS,
  BATCH_DEFAULTS,
  settingsHelp,
  type DownlinkCodec,
  type EdgeLimits,
  type Mode,
  type TurnResult,
} from '@dssd/protocol';
import { ChatConversation } from '@dssd/models';
import { EdgeNode, EdgeStartError } from './server.js';
import { Logger, type LogLevel } from './log.js';
import { connectNodeDevice } from './device/node.js';
import {
  batchCost,
  deviceFlags,
  deviceSettings,
  fail,
  list,
  num,
  parseIceServers,
  targetCost,
  webrtcStack,
} from './flags.js';
import { AccessError, isLoopbackName, issueJoinToken, type AccessConfig } from './access.js';

const L = DEFAULT_EDGE_LIMITS;
const N = EDGE_NODE_DEFAULTS;
const MiB = 1024 * 1024;
const S = SCORE_LIMITS;

/** The help text; every default and range in it comes from the settings home. */
export const HELP = `dssd — lossless device–edge LLM inference by Distributed Split Speculative Decoding

Usage:
  dssd serve [options]                 start an edge node (target model, web app, signaling)
  dssd generate --prompt TEXT [opts]   generate with a Node device (draft model) against an edge
  dssd fidelity --prompt TEXT [opts]   test a mode/codec's output law against the target's exact probabilities
  dssd token --key KEY [--ttl S]       print a signed join token (for an edge started with --token-key KEY)
  dssd fuzz [--frames N] [--channel-frames N] [--seed S] [--json]
                                       hostile input: mutated frames in-process and over a data channel
  dssd load [--devices N] [--tokens T] [--batch] [--mode dssd|ar] [--seconds S] [--runs R] [--webrtc STACK]
            [--json]                   N concurrent devices against an edge of its own (default 16); --batch:
                                       batched verification; --seconds: steady state; --runs: median run
  dssd drill [--tokens T]              attacks on an edge of its own while a greedy device runs; one JSON line
  dssd nginx-config --upstream HOST:PORT,… [--listen PORT] [--server-name NAME]
                                       nginx in front of a fleet of edge processes (README: "A fleet")
  dssd webrtc-bench [--webrtc STACK] [--peers 16,64,128] [--messages N] [--churn N] [--json]
                                       the Node WebRTC stacks compared: memory, fds, threads per peer, setup
                                       time, CPU per message, a 600 KB frame, and a connect/disconnect churn loop

serve options:
  --model DIR            target model folder (Hugging Face-style ONNX decoder; default: embedded target)
  --draft DIR            draft model folder served to browsers (default: embedded draft)
  --port N               port (default ${N.port}, or $PORT)
  --host ADDR            bind address (default ${N.host}: this machine only; 0.0.0.0 for the LAN, which needs
                           --secret or --token-key, or an explicit --insecure-open)
  --max-sessions N       concurrent sessions (default ${N.maxSessions})
  --max-context N        longest history per session (default: the model's context)
  --max-gamma N          largest draft length accepted, 1..${GAMMA.ceiling} (default ${L.maxGamma})
  --modes LIST           allowed modes, comma-separated (default ${L.allowedModes.join(',')})
  --codecs LIST          allowed downlink codecs (default ${L.allowedCodecs.join(',')})
  --ice-servers LIST     STUN/TURN URLs, comma-separated, or a JSON array of RTCIceServer (devices beyond the LAN)
  --webrtc STACK         Node WebRTC stack: ${WEBRTC_STACKS.join('|')} (default ${N.webrtc}; also for generate, load,
                           webrtc-bench)
  --tls-cert FILE        TLS certificate (a page reached at a LAN address over plain http is not a secure
  --tls-key FILE           context: no WebGPU, crypto.subtle or SharedArrayBuffer there)
  --target-ms A,B|NAME   EMULATION: pad each target forward pass to A + B·tokens ms, or a preset
                           (${Object.entries(TARGET_COST_PRESETS)
                             .map(([k, v]) => `${k} = ${v.a},${v.b}`)
                             .join('; ')})
  --batch                batched verification: all sessions' target passes (and edge-only steps) in one
                           continuous-batching queue, up to ${BATCH_DEFAULTS.tokenBudget} tokens a pass (slower graphs refused)
  --batch-cost NAME      EMULATION with --batch: pad each batched pass to T(B, tokens) from an H200 table
                           (${Object.keys(BATCH_COST_PRESETS).join(', ')})
  --log-level LEVEL      debug|info|warn|error|silent (default info)

access (devices pass the credential as --token, the page's ?token=, or the widget's token attribute):
  --secret S             shared secret every device must present, >= ${N.minSecretLength} chars ($DSSD_SECRET)
  --token-key KEY        accept signed, expiring join tokens made with KEY (>= 16 chars; $DSSD_TOKEN_KEY); issue
                           them with 'dssd token --key KEY --ttl 600', or from your backend via POST /token
  --issuer-secret S      enables POST /token?ttl=S on this edge for 'Authorization: Bearer S' ($DSSD_ISSUER_SECRET);
                           ${N.issuerFailuresPerMinute} failed guesses per minute per address, then 429
  --single-use-tokens    a signed join token admits one session (nonce remembered until expiry, per edge node);
                           a reconnect may reuse it to resume its own session (default ${N.singleUseTokens ? 'on' : 'off'})
  --allow-origin LIST    web origins (scheme://host[:port], comma-separated, or *) whose pages may embed the widget
                           and signal; the edge's public origins and localhost pages always may
  --public-origin LIST   this edge's own origins (scheme://host[:port]): the Host names it answers besides
                           loopback names and IP literals (DNS rebinding guard; default: none)
  --metrics-token T      bearer token for /metrics and the full /healthz ($DSSD_METRICS_TOKEN; default: the
                           join credential when one is set, else open); /healthz always answers {ok}
  --insecure-open        bind beyond localhost without any credential (anyone who reaches the port may join)

limits (each refusal is a typed error frame, counted in /metrics as dssd_errors_total{code}):
  --max-prompt N         tokens in one turn (default ${L.maxPromptTokens})       --max-new-tokens N  per turn (default ${L.maxNewTokens})
  --max-frame-bytes N    largest reassembled frame (default ${L.maxFrameBytes / MiB} MiB)
  --max-rounds N         verify rounds per second per session (default ${L.maxRoundsPerSecond})
  --max-pending N        WebRTC handshakes at once, counted against --max-sessions (default ${N.maxPending})
  --max-held N           dropped sessions held for resume, KV cache included; oldest evicted (default ${N.maxHeld})
  --hello-timeout S      a peer must say hello S seconds after its channel opens (default ${N.helloTimeoutS})
  --idle-timeout S       close sessions with no progress (pings do not count) for S seconds (default ${N.idleTimeoutS})
  --partial-frame-timeout S  a partial frame must complete within S seconds (default ${N.partialFrameTimeoutS}); one
                           partial frame per session; frames above the session's largest legal frame are refused
                           (before hello: ${N.preHelloMaxFrameBytes / 1024} KiB)
  --reassembly-budget-mb N   partial-frame memory edge-wide (default ${N.reassemblyBudgetBytes / MiB} MiB)
  --max-peer-errors N    error frames a peer may draw per ${N.errorLogIntervalS} s before it is disconnected (default ${N.maxPeerErrors});
                           beyond ${N.errorLogBurst} per code the log samples them, one line per ${N.errorLogIntervalS} s
  --joins-per-second N   joins per second per client address, burst 2N (default ${N.joinsPerSecond})
  --score-queue N        POST /score requests running or waiting, more get 503 (default ${S.maxQueued}); each at most
                           ${S.maxBodyBytes / MiB} MiB and ${S.maxContexts} contexts of tokens
  --resume-hold S        keep a dropped session's KV cache S seconds for its device to resume (default ${N.resumeHoldS})

generate / fidelity options:
  --edge URL             edge node (default http://localhost:${N.port})
  --prompt TEXT          prompt text
  --chat                 [generate] render the prompt as a user turn with the model's chat template
  --then TEXT            [generate --chat, repeatable] a further user turn; the KV caches of the history are reused
  --tokens T --samples N tokens per sample and samples       [fidelity; defaults 2 and 1000]
  --draft DIR            draft model folder (default: embedded draft)
  --token T              join credential
  --webrtc STACK         Node WebRTC stack (see serve)
  --json                 print one JSON object as the last line
  --draft-ms A           EMULATION: pad each drafted token to A ms (a browser draft's cost)
  --plant-bug no-max     [fidelity only] a residual without max(0,·), to show the test catches it
${settingsHelp(SETTING_SPECS.map((s) => s.key))}
`;

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
      webrtc: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'target-ms': { type: 'string' },
      batch: { type: 'boolean' },
      'batch-cost': { type: 'string' },
      'log-level': { type: 'string' },
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
      'max-pending': { type: 'string' },
      'max-held': { type: 'string' },
      'hello-timeout': { type: 'string' },
      'partial-frame-timeout': { type: 'string' },
      'reassembly-budget-mb': { type: 'string' },
      'joins-per-second': { type: 'string' },
      'max-peer-errors': { type: 'string' },
      'score-queue': { type: 'string' },
      'public-origin': { type: 'string' },
      'metrics-token': { type: 'string' },
      'single-use-tokens': { type: 'boolean' },
    },
  });
  const level = (v['log-level'] ?? 'info') as LogLevel;
  if (!['debug', 'info', 'warn', 'error', 'silent'].includes(level))
    fail('--log-level must be debug|info|warn|error|silent');
  if (!!v['tls-cert'] !== !!v['tls-key']) fail('--tls-cert and --tls-key go together');
  const cost = targetCost(v['target-ms']);
  if (v['batch-cost'] && !v.batch) fail('--batch-cost needs --batch');
  // A per-session pad would be applied once per session inside one shared pass: batched passes are costed per pass.
  if (v.batch && cost) fail('--target-ms pads unbatched passes; with --batch use --batch-cost');
  const batch = v.batch ? { cost: batchCost(v['batch-cost']) } : undefined;
  const limits: Partial<EdgeLimits> = {};
  if (v['max-context']) limits.maxContext = num(v['max-context'], 'max-context', 0, true);
  if (v['max-gamma']) {
    const g = num(v['max-gamma'], 'max-gamma', L.maxGamma, true);
    if (g < GAMMA.min || g > GAMMA.ceiling) fail(`--max-gamma must be in [${GAMMA.min}, ${GAMMA.ceiling}]`);
    limits.maxGamma = g;
  }
  const modes = list<Mode>(v.modes, MODES, 'modes');
  if (modes) limits.allowedModes = modes;
  const codecs = list<DownlinkCodec>(v.codecs, DOWNLINK_CODECS, 'codecs');
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
  const metricsToken = v['metrics-token'] ?? process.env.DSSD_METRICS_TOKEN;
  if (metricsToken) access.metricsToken = metricsToken;
  if (v['single-use-tokens']) access.singleUseTokens = true;
  const publicOrigins = v['public-origin']
    ?.split(',')
    .map((x) => x.trim())
    .filter(Boolean);
  if (publicOrigins) access.publicOrigins = publicOrigins;
  const host = v.host ?? N.host;
  // Only names the OS itself maps to loopback skip the check ('*.localhost' may resolve anywhere).
  if (!isLoopbackName(host) && !secret && !tokenKey && !v['insecure-open']) {
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
    idleTimeoutMs: 1000 * num(v['idle-timeout'], 'idle-timeout', N.idleTimeoutS),
    resumeHoldMs: 1000 * num(v['resume-hold'], 'resume-hold', N.resumeHoldS),
    maxPending: num(v['max-pending'], 'max-pending', N.maxPending, true),
    maxHeld: num(v['max-held'], 'max-held', N.maxHeld, true),
    helloTimeoutMs: 1000 * num(v['hello-timeout'], 'hello-timeout', N.helloTimeoutS),
    partialFrameTimeoutMs:
      1000 * num(v['partial-frame-timeout'], 'partial-frame-timeout', N.partialFrameTimeoutS),
    reassemblyBudgetBytes: Math.round(
      MiB * num(v['reassembly-budget-mb'], 'reassembly-budget-mb', N.reassemblyBudgetBytes / MiB),
    ),
    joinsPerSecond: num(v['joins-per-second'], 'joins-per-second', N.joinsPerSecond),
    maxPeerErrors: num(v['max-peer-errors'], 'max-peer-errors', N.maxPeerErrors, true),
    score: { maxQueued: num(v['score-queue'], 'score-queue', S.maxQueued, true) },
    modelDir: v.model,
    draftDir: v.draft,
    port: num(v.port ?? process.env.PORT, 'port', N.port, true),
    host,
    maxSessions: num(v['max-sessions'], 'max-sessions', N.maxSessions, true),
    limits,
    iceServers: parseIceServers(v['ice-servers']),
    webrtc: webrtcStack(v.webrtc),
    tls: v['tls-cert'] ? { cert: v['tls-cert'], key: v['tls-key']! } : undefined,
    targetCost: cost,
    batch,
    log,
  });
  log.info('edge node ready', {
    url: node.url,
    webrtc: webrtcStack(v.webrtc),
    model: node.model.config.name,
    vocabSize: node.model.config.vocabSize,
    ...(cost ? { emulatedTargetMs: cost, emulation: true } : {}),
    ...(batch
      ? { batch: true, ...(batch.cost ? { emulatedBatchCost: batch.cost.label, emulation: true } : {}) }
      : {}),
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
  const { settings, adaptiveGamma, maxTokens, draftCostMs } = deviceSettings(v);
  const dev = await connectNodeDevice({
    edge: v.edge ?? `http://localhost:${N.port}`,
    settings,
    draftDir: v.draft,
    adaptiveGamma,
    draftCostMs,
    token: v.token,
    webrtc: webrtcStack(v.webrtc),
  });
  const tok = dev.draft.tokenizer;
  const chat = v.chat ? dev.draft.chatTemplate : null;
  if (v.chat && !chat)
    fail(`--chat: ${dev.draft.config.name} has no chat template (tokenizer_config.json chat_template)`);
  if (v.then?.length && !chat) fail('--then needs --chat');
  const conversation = chat ? new ChatConversation(chat, tok) : null;
  const turns: { prompt: string; text: string; reused: number; prefilled: number }[] = [];
  let r: TurnResult | undefined;
  for (const prompt of [v.prompt, ...(v.then ?? [])]) {
    let feed: number[];
    let reused = 0;
    if (conversation) {
      const before = dev.session.history.length;
      ({ keep: reused, feed } = conversation.user(prompt, dev.session.history));
      if (reused < before) dev.session.rewind(reused);
      if (!v.json) process.stdout.write(`${turns.length ? '\n' : ''}> ${prompt}\n`);
    } else {
      feed = tok.encode(prompt);
      if (!v.json) process.stdout.write(prompt);
    }
    if (feed.length === 0) fail('the prompt encodes to no tokens');
    const stream = tok.decodeStream({ skipSpecialTokens: conversation !== null });
    const start = dev.session.history.length + feed.length;
    r = await dev.session.generate(feed, {
      maxNewTokens: maxTokens,
      onTokens: (ev) => {
        if (!v.json) process.stdout.write(stream.push(ev.tokens));
      },
    });
    if (!v.json) process.stdout.write(stream.flush() + '\n');
    const text = conversation
      ? conversation.assistant(dev.session.history.slice(start))
      : tok.decode(r.tokens);
    turns.push({ prompt, text, reused, prefilled: feed.length });
    if (conversation && !v.json)
      process.stderr.write(
        `(turn ${turns.length}: ${reused} tokens reused from the KV caches, ${feed.length} prefilled)\n`,
      );
  }
  if (!r) return;
  const ts = await dev.session.transport.channel.transportStats?.();
  const s = r.stats;
  const out = {
    text: turns[turns.length - 1].text,
    tokens: r.tokens,
    mode: dev.session.settings.mode,
    codec: dev.session.settings.codec,
    done: r.done,
    ...(chat ? { turns } : {}),
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
      wastedDrafts: s.wastedDrafts,
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
        await (await import('./drills/fidelity.js')).fidelityCommand(rest);
        return exitSoon();
      case 'fuzz':
        await (await import('./drills/fuzz.js')).fuzzCommand(rest);
        return exitSoon();
      case 'load':
        await (await import('./drills/load.js')).loadCommand(rest);
        return exitSoon();
      case 'drill':
        await (await import('./drills/attack.js')).drillCommand(rest);
        return exitSoon();
      case 'nginx-config':
        return (await import('./fleet.js')).nginxConfigCommand(rest);
      case 'webrtc-bench':
        await (await import('./drills/webrtc-bench.js')).webrtcBenchCommand(rest);
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
    // Start failures (a busy port, a short secret) are one line and exit 1, not a stack trace.
    if (e instanceof EdgeStartError || e instanceof AccessError) {
      process.stderr.write(`dssd: ${e.message}\n`);
      process.exit(1);
    }
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
