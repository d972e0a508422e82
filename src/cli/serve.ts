// `weir serve` (the visibility server: flows API, live stream, metrics, dashboard, alerts,
// following the kernel of every node of a lab) and `weir flows` (query or follow a server).
// Thin shell over src/api/visibility.ts and src/flows/cli.ts.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Option, type Command } from 'commander';
import { startVisibility, type Visibility } from '../api/visibility.js';
import { DEFAULT_PORT } from '../api/server.js';
import { AlertConfigError } from '../flows/alerts.js';
import { DEFAULT_SERVER, runFlowsCommand, type FlowsCliOptions } from '../flows/cli.js';
import { ReasonsError } from '../flows/reasons.js';
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
}

/** `--port`: 0 (any free port) to 65535. */
export function parsePort(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isInteger(n) || n > 65535) throw new CliError(`invalid --port "${text}": expected a port number 0-65535`);
  return n;
}


async function runServe(opts: ServeOptions): Promise<void> {
  const port = parsePort(opts.port);
  const labDir = resolve(opts.labDir ?? defaultLabDir(DEFAULT_PREFIX));
  if (!existsSync(labDir)) throw new CliError(`lab directory ${labDir} does not exist: run \`weir lab up\` first (or pass --lab-dir)`);
  if (opts.alerts !== undefined && !existsSync(opts.alerts)) throw new CliError(`--alerts: no such file ${opts.alerts}`);
  let vis: Visibility;
  try {
    vis = await startVisibility({
      labDir,
      port,
      host: opts.host,
      ...(opts.store !== undefined ? { storePath: resolve(opts.store) } : {}),
      ...(opts.alerts !== undefined ? { alertsFile: resolve(opts.alerts) } : {}),
      log: (l) => process.stderr.write(`${l}\n`),
    });
  } catch (e) {
    if (e instanceof AlertConfigError || e instanceof ReasonsError) throw new CliError(e.message, EXIT_INPUT, e);
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new CliError(`cannot listen on ${opts.host}:${port}: the port is in use (pick another with --port)`, EXIT_INPUT, e);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new CliError(`cannot listen on ${opts.host}:${port}: no such local address`, EXIT_INPUT, e);
    throw e;
  }
  const nodes = vis.sources.map((s) => s.node);
  process.stdout.write(`${SERVE_LISTENING}${vis.url} (lab ${labDir}; following ${nodes.length > 0 ? nodes.join(', ') : 'no nodes'})\n`);
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
}

async function runFlows(opts: FlowsFlags): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    const code = await runFlowsCommand(opts, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(`weir: ${s}`) }, controller.signal);
    exitStatus.raise(code);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
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
    .addHelpText(
      'after',
      `
Examples:
  $ sudo weir serve                                the lab in /run/weir/lab on 127.0.0.1:${DEFAULT_PORT}
  $ sudo weir serve --lab-dir /tmp/lab --port 0 --alerts alerts.yaml

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
    .addHelpText(
      'after',
      `
Examples:
  $ weir flows --verdict DROPPED --from-namespace shop
  $ weir flows --to-pod data/postgres-0 --port 5432 --output json
  $ weir flows --follow --to-namespace data

Exit status: 0 ok, 1 the server cannot be reached, 2 bad filters.`,
    )
    .action(runFlows);
}
