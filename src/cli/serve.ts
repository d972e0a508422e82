// `weir serve` (the visibility server: flows API, live stream, metrics, dashboard, alerts,
// following the kernel of every node of a lab) and `weir flows` (query or follow a server).
// Thin shell over src/api/visibility.ts and src/flows/cli.ts.

import { X509Certificate, createPrivateKey } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { Option, type Command } from 'commander';
import { startVisibility, type Visibility } from '../api/visibility.js';
import { ExposureError, validateToken } from '../api/security.js';
import { DEFAULT_PORT } from '../api/server.js';
import { AlertConfigError } from '../flows/alerts.js';
import { DEFAULT_SERVER, runFlowsCommand, type FlowsCliOptions } from '../flows/cli.js';
import { ReasonsError } from '../flows/reasons.js';
import { runStatusCommand } from '../flows/status-cli.js';
import { DEFAULT_PREFIX, defaultLabDir } from '../lab/index.js';
// `weir lab up` waits for this line to know the server listens, and where.
import { SERVE_LISTENING } from '../lab/supervisor.js';
import { CliError, EXIT_INPUT, exitStatus } from './exit.js';

export interface ServeOptions {
  readonly labDir?: string;
  readonly port: string;
  readonly host: string;
  readonly store?: string;
  readonly alerts?: string;
  readonly tokenFile?: string;
  readonly tlsCert?: string;
  readonly tlsKey?: string;
  readonly cluster?: boolean;
  readonly clientCa?: string;
}

/** `weir serve --cluster`: the in-memory edge aggregator's horizon. */
export const CLUSTER_LIVE_HORIZON_MS = 10 * 60_000;

/** Reads a small input file; a missing file, a folder or an unreadable file is an input error. */
export function readInputFile(flag: string, file: string): Buffer {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new CliError(`${flag}: no such file ${file}`);
  }
  if (st.isDirectory()) throw new CliError(`${flag}: ${file} is a folder, not a file`);
  try {
    return readFileSync(file);
  } catch (e) {
    throw new CliError(`${flag}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, EXIT_INPUT, e);
  }
}

/** `--token-file`: one line, at least 16 characters. */
export function readTokenFile(file: string): string {
  const token = readInputFile('--token-file', file).toString('utf8');
  try {
    return validateToken(token, file);
  } catch (e) {
    throw new CliError(`--token-file: ${(e as Error).message}`, EXIT_INPUT, e);
  }
}

/** `--tls-cert` and `--tls-key`: both or neither; PEM; the key must belong to the certificate. */
export function readTls(certFile: string | undefined, keyFile: string | undefined): { cert: Buffer; key: Buffer } | undefined {
  if (certFile === undefined && keyFile === undefined) return undefined;
  if (certFile === undefined || keyFile === undefined) throw new CliError('--tls-cert and --tls-key go together: give both (PEM certificate and its private key)');
  const cert = readInputFile('--tls-cert', certFile);
  const key = readInputFile('--tls-key', keyFile);
  try {
    new X509Certificate(cert);
  } catch (e) {
    throw new CliError(`--tls-cert: ${certFile} is not a PEM certificate`, EXIT_INPUT, e);
  }
  try {
    createPrivateKey(key);
  } catch (e) {
    throw new CliError(`--tls-key: ${keyFile} is not a PEM private key (or it is encrypted)`, EXIT_INPUT, e);
  }
  try {
    createSecureContext({ cert, key });
  } catch (e) {
    throw new CliError(`--tls-key: ${keyFile} does not belong to the certificate ${certFile}`, EXIT_INPUT, e);
  }
  return { cert, key };
}

/** `--store`: a folder is not a database file. */
function checkStorePath(file: string): void {
  if (existsSync(file) && statSync(file).isDirectory()) throw new CliError(`--store: ${file} is a folder; give a file for the SQLite flow store`);
}

/** `--port`: 0 (any free port) to 65535. */
export function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isInteger(n) || n > 65535) throw new CliError(`invalid --port "${text}": expected a port number 0-65535`);
  return n;
}


function storeOf(opts: ServeOptions, labDir: string | undefined): string {
  return opts.store !== undefined ? resolve(opts.store) : resolve(labDir ?? '.', 'flows.db');
}

async function runServe(opts: ServeOptions): Promise<void> {
  const port = parsePort(opts.port);
  // --cluster: flows come from shipping agents; a lab, when given, only names pods and policies.
  const cluster = opts.cluster === true;
  const labDir = cluster && opts.labDir === undefined ? undefined : resolve(opts.labDir ?? defaultLabDir(DEFAULT_PREFIX));
  if (labDir !== undefined && !existsSync(labDir)) throw new CliError(`lab directory ${labDir} does not exist: run \`weir lab up\` first (or pass --lab-dir)`);
  if (cluster && opts.tokenFile === undefined) throw new CliError('--cluster needs --token-file: agents ship flows only with the server\'s token');
  if (labDir === undefined && opts.store === undefined) throw new CliError('--cluster without --lab-dir needs --store FILE (the SQLite flow store)');
  if (opts.alerts !== undefined) readInputFile('--alerts', opts.alerts);
  if (opts.store !== undefined) checkStorePath(resolve(opts.store));
  const token = opts.tokenFile !== undefined ? readTokenFile(opts.tokenFile) : undefined;
  const served = readTls(opts.tlsCert, opts.tlsKey);
  if (opts.clientCa !== undefined && !served) throw new CliError('--client-ca needs --tls-cert and --tls-key: client certificates are checked over HTTPS');
  const clientCa = opts.clientCa !== undefined ? readInputFile('--client-ca', opts.clientCa) : undefined;
  if (clientCa) {
    try {
      new X509Certificate(clientCa);
    } catch (e) {
      throw new CliError(`--client-ca: ${opts.clientCa ?? ''} is not a PEM certificate`, EXIT_INPUT, e);
    }
  }
  const tls = served ? { ...served, ...(clientCa ? { clientCa } : {}) } : undefined;
  let vis: Visibility;
  try {
    vis = await startVisibility({
      ...(labDir !== undefined ? { labDir } : {}),
      sources: !cluster,
      // 100 nodes' edges in 10 s buckets for an hour would grow the server by hundreds of MiB;
      // beyond 10 minutes the per-minute aggregates in SQLite answer.
      ...(cluster ? { liveHorizonMs: CLUSTER_LIVE_HORIZON_MS } : {}),
      port,
      host: opts.host,
      ...(token !== undefined ? { token } : {}),
      ...(tls ? { tls } : {}),
      ...(opts.store !== undefined ? { storePath: resolve(opts.store) } : {}),
      ...(opts.alerts !== undefined ? { alertsFile: resolve(opts.alerts) } : {}),
      log: (l) => process.stderr.write(`${l}\n`),
    });
  } catch (e) {
    if (e instanceof AlertConfigError || e instanceof ReasonsError || e instanceof ExposureError) throw new CliError(e.message, EXIT_INPUT, e);
    const code = (e as NodeJS.ErrnoException).code;
    // better-sqlite3: the store file is not a database, or cannot be opened or created.
    if (code === 'SQLITE_NOTADB' || code === 'SQLITE_CORRUPT') throw new CliError(`flow store ${storeOf(opts, labDir)} is not a weir SQLite database (pick another --store)`, EXIT_INPUT, e);
    if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_READONLY' || code === 'SQLITE_IOERR') throw new CliError(`flow store ${storeOf(opts, labDir)}: cannot open or write it (${code})`, EXIT_INPUT, e);
    if (code === 'EADDRINUSE') throw new CliError(`cannot listen on ${opts.host}:${port}: the port is in use (pick another with --port)`, EXIT_INPUT, e);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new CliError(`cannot listen on ${opts.host}:${port}: no such local address`, EXIT_INPUT, e);
    throw e;
  }
  const nodes = vis.sources.map((s) => s.node);
  const what = cluster ? `cluster: flows from agents (weir agent --server ${vis.url})${labDir !== undefined ? `; lab ${labDir}` : ''}` : `lab ${labDir ?? ''}; following ${nodes.length > 0 ? nodes.join(', ') : 'no nodes'}`;
  process.stdout.write(`${SERVE_LISTENING}${vis.url} (${what})\n`);
  process.stdout.write(`dashboard: ${vis.url}/  API docs: ${vis.url}/docs  metrics: ${vis.url}/metrics\n`);
  await new Promise<void>((done) => {
    const stop = (): void => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      done();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  await vis.stop();
}

interface FlowsFlags extends FlowsCliOptions {
  readonly output?: string;
  readonly tokenFile?: string;
}

async function runFlows(opts: FlowsFlags): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    const tokenFile = opts.tokenFile ?? process.env.WEIR_TOKEN_FILE;
    const token = tokenFile !== undefined && tokenFile !== '' ? readTokenFile(tokenFile) : undefined;
    const code = await runFlowsCommand({ ...opts, ...(token !== undefined ? { token } : {}) }, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(`weir: ${s}`) }, controller.signal);
    exitStatus.raise(code);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

async function runStatus(opts: { server: string; tokenFile?: string; json?: boolean; output?: string }): Promise<void> {
  const tokenFile = opts.tokenFile ?? process.env.WEIR_TOKEN_FILE;
  const token = tokenFile !== undefined && tokenFile !== '' ? readTokenFile(tokenFile) : undefined;
  const code = await runStatusCommand(
    { server: opts.server, output: opts.json ? 'json' : (opts.output ?? 'table'), ...(token !== undefined ? { token } : {}) },
    { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(`weir: ${s}`) },
  );
  exitStatus.raise(code);
}

export function registerServeCommands(program: Command): void {
  program
    .command('serve')
    .description('the visibility server: flows API, live stream, metrics, alerts and the dashboard, following the kernel of every lab node (root)')
    .option('--lab-dir <dir>', 'lab directory (default: $WEIR_LAB_DIR, else /run/weir/lab)')
    .option('--port <port>', 'TCP port (0: any free port)', String(DEFAULT_PORT))
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--store <path>', 'SQLite file for flows and alerts (default: <lab-dir>/flows.db)')
    .option('--alerts <file>', 'alert rules (YAML: webhook + rules)')
    .option('--token-file <file>', 'require this bearer token (one line, ≥ 16 characters) on every route but /api/health; needed to listen on a non-loopback address')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--client-ca <file>', 'PEM CA: agents must present a client certificate it signed to ship flows (mutual TLS; needs --tls-cert)')
    .option('--cluster', 'gather flows shipped by agents (`weir agent --server`) instead of following lab nodes; needs --token-file, and --store without --lab-dir')
    .addHelpText(
      'after',
      `
Examples:
  $ sudo weir serve                                the lab in /run/weir/lab on 127.0.0.1:${DEFAULT_PORT}
  $ sudo weir serve --lab-dir /tmp/lab --port 0 --alerts alerts.yaml
  $ openssl rand -hex 32 > /etc/weir/token && chmod 600 /etc/weir/token
  $ sudo weir serve --host 0.0.0.0 --token-file /etc/weir/token --tls-cert cert.pem --tls-key key.pem
  $ weir serve --cluster --store /var/lib/weir/flows.db --host 0.0.0.0 --token-file /etc/weir/token

Listening on anything but loopback needs --token-file. On loopback, requests whose Host header
is not a loopback name get 403 (DNS rebinding). Browsers sign in at /login with the token.

\`weir lab up\` starts one for its lab (stop it with \`weir lab down\`; skip it with --no-serve).
Exit status: 0 stopped by a signal, 2 bad arguments, a port in use or invalid alert rules.`,
    )
    .action(runServe);

  program
    .command('flows')
    .description('query the flows a weir server recorded, or follow them live')
    .option('--from-namespace <ns>', 'source namespace')
    .option('--from-pod <pod>', 'source pod (name or ns/name)')
    .option('--to-namespace <ns>', 'destination namespace')
    .option('--to-pod <pod>', 'destination pod (name or ns/name)')
    .option('--verdict <verdict>', 'FORWARDED, DROPPED or AUDIT')
    .option('--port <port>', 'destination port')
    .option('--protocol <protocol>', 'TCP, UDP, SCTP, ICMP or ICMPv6')
    .option('--policy <policy>', 'deciding policy, e.g. "NetworkPolicy shop/default-deny"')
    .option('--since <time>', 'duration ago (5m) or RFC3339 time')
    .option('--until <time>', 'duration ago (1m) or RFC3339 time')
    .option('--limit <n>', 'at most this many flows (default 100)')
    .option('-f, --follow', 'stream new flows until interrupted')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['table', 'json']).default('table'))
    .option('--server <url>', 'weir server', DEFAULT_SERVER)
    .option('--token-file <file>', 'bearer token of a server started with --token-file (default: $WEIR_TOKEN_FILE)')
    .addHelpText(
      'after',
      `
Examples:
  $ weir flows --verdict DROPPED --from-namespace shop
  $ weir flows --to-pod data/postgres-0 --port 5432 --output json
  $ weir flows --follow --to-namespace data
  $ weir flows --server https://weir.example:7680 --token-file ~/.weir-token
    (a self-signed certificate: NODE_EXTRA_CA_CERTS=cert.pem weir flows …)

Exit status: 0 ok, 1 the server cannot be reached, 2 bad filters, a bad --server URL or a refused token.`,
    )
    .action(runFlows);

  program
    .command('status')
    .description('the agents that ship flows to a weir server: version, last sync, lag, ruleset size, errors, buffer, losses')
    .option('--server <url>', 'weir server', DEFAULT_SERVER)
    .option('--token-file <file>', 'bearer token of the server (default: $WEIR_TOKEN_FILE)')
    .option('--json', 'print the server\'s reply as JSON')
    .addHelpText(
      'after',
      `
Examples:
  $ weir status --server https://weir.example:7680 --token-file ~/.weir-token
  $ weir status --json | jq '.agents[] | {node, lost: .report.ship.lostFlows}'

An agent silent for 30 s is shown as stale. Exit status: 0 every agent ok, 1 the server cannot be
reached or an agent is stale, failing to apply or has lost flows, 2 bad arguments or a refused token.`,
    )
    .action(runStatus);
}
