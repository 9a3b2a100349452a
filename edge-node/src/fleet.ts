/**
 * A fleet of edge processes behind nginx: the one nginx configuration the README shows (`dssd nginx-config`) and
 * the fleet test runs. nginx carries HTTP (the page, static files, /token, /score) and the /signal WebSocket; the
 * data channel goes straight from the device to the node (UDP), never through the proxy.
 *
 * Routing: a fresh join has no session and goes to a node at random (`$request_id`); a reconnect names its
 * session in the signaling URL (`?session=<id>`, SESSION_QUERY), which is hashed consistently, so it lands on the
 * node that still holds that session's KV cache while that node is alive. When it is not, nginx tries the next
 * node on the ring, which rebuilds the session from the device's committed tokens.
 */
import { parseArgs } from 'node:util';
import { SESSION_QUERY } from '@dssd/protocol';
import { fail } from './flags.js';

export interface NginxFleetOptions {
  /** Where nginx listens: `port` or `address:port`. */
  listen: string;
  /** The edge nodes, `host:port` each. */
  upstreams: string[];
  /** server_name (default `_`: any). */
  serverName?: string;
  /**
   * For a private nginx (tests): a folder for the error log and temp files, so it runs as any user. Unset: the
   * `http { … }` block alone, for a site file in /etc/nginx/conf.d/.
   */
  prefix?: string;
}

const HOST_PORT = /^(?:\[[0-9a-fA-F:.]+\]|[\w.-]+):\d{1,5}$/;

/** The nginx configuration for a fleet (validated: host:port upstreams, a port or address:port to listen on). */
export function nginxFleetConfig(o: NginxFleetOptions): string {
  if (o.upstreams.length === 0) throw new Error('a fleet needs at least one upstream host:port');
  for (const u of o.upstreams) if (!HOST_PORT.test(u)) throw new Error(`upstream '${u}' is not host:port`);
  if (!/^\d{1,5}$/.test(o.listen) && !HOST_PORT.test(o.listen))
    throw new Error(`listen '${o.listen}' is not a port or address:port`);
  if (o.serverName !== undefined && !/^[\w.*-]+$/.test(o.serverName))
    throw new Error(`server name '${o.serverName}' is not a host name`);
  const p = o.prefix;
  const http = `
  # A WebSocket upgrade is passed on; a plain request closes the upstream connection as usual.
  map $http_upgrade $dssd_connection {
    default upgrade;
    ''      close;
  }
  # Fresh joins spread at random; a reconnect's ?${SESSION_QUERY}=<id> goes where that session lives.
  map $arg_${SESSION_QUERY} $dssd_route {
    ''      $request_id;
    default $arg_${SESSION_QUERY};
  }
  upstream dssd_edges {
    hash $dssd_route consistent;
${o.upstreams.map((u) => `    server ${u} max_fails=1 fail_timeout=10s;`).join('\n')}
  }
  server {
    listen ${o.listen};
    server_name ${o.serverName ?? '_'};
    proxy_http_version 1.1;
    # Responses (the 14 MB ORT wasm, the draft model) and request bodies (/score, ≤ 1 MiB) stay in memory: no
    # temp files, which nginx's unprivileged workers may not be allowed to write.
    proxy_max_temp_file_size 0;
    client_body_buffer_size 1m;
    # A dead node is skipped quickly (then the next node on the ring is tried).
    proxy_connect_timeout 2s;
    location = /signal {
      proxy_pass http://dssd_edges;
      # Every node checks Host (DNS rebinding): keep the client's and name it with --public-origin on each
      # node. (A location with any proxy_set_header inherits none from the server block: each one lists all.)
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $dssd_connection;
      # Signaling lasts one handshake (the socket closes once the data channel is open).
      proxy_read_timeout 60s;
    }
    location / {
      proxy_pass http://dssd_edges;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      # /score answers may take a while; bodies are capped by the node (1 MiB).
      proxy_read_timeout 300s;
      client_max_body_size 1m;
    }
  }
`;
  if (p === undefined)
    return `# dssd fleet: include in nginx's http { } block (e.g. /etc/nginx/conf.d/dssd.conf)\n${http}`;
  return `# dssd fleet: a private nginx (nginx -p ${p} -c ${p}/nginx.conf -e ${p}/error.log)
worker_processes 1;
error_log ${p}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${p}/client_body;
  proxy_temp_path ${p}/proxy;
  fastcgi_temp_path ${p}/fastcgi;
  uwsgi_temp_path ${p}/uwsgi;
  scgi_temp_path ${p}/scgi;
${http}}
`;
}

/** `dssd nginx-config --listen 8080 --upstream 127.0.0.1:8081,127.0.0.1:8082 [--server-name NAME]`. */
export function nginxConfigCommand(argv: string[]): void {
  const { values: v } = parseArgs({
    args: argv,
    options: {
      listen: { type: 'string' },
      upstream: { type: 'string' },
      'server-name': { type: 'string' },
      prefix: { type: 'string' },
    },
  });
  if (!v.upstream) fail('--upstream host:port,host:port,… is required (the edge nodes)');
  try {
    process.stdout.write(
      nginxFleetConfig({
        listen: v.listen ?? '80',
        upstreams: v.upstream
          .split(',')
          .map((x) => x.trim())
          .filter(Boolean),
        serverName: v['server-name'],
        prefix: v.prefix,
      }),
    );
  } catch (e) {
    fail((e as Error).message);
  }
}
