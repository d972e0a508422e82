// `weir lb status|drain|undrain`: Services at run time.
//
// How the CLI reaches the agents: through files in the lab directory, the same way `weir lab
// apply` reaches them. `drain`/`undrain` rewrite `<lab-dir>/lb-drain.json` atomically; every
// agent's balancing loop reads it each tick (500 ms) and moves new connections within a tick
// or two. `status` reads the agents' `<lab-dir>/lb-<node>.json`, or asks a `weir serve` for
// `/api/services` (--server), which reads the same files and what agents pushed. In cluster
// mode (--server) `drain`/`undrain` set the drains on the server (src/api/routes/lb.ts), where
// the agents fetch them every tick.

import type { Command } from 'commander';
import { resolve } from 'node:path';
import { DEFAULT_PREFIX, defaultLabDir } from '../lab/index.js';
import { readLbStatuses, setDrain } from '../agent/lb-files.js';
import { LOCATION_NAME, serviceViews, type ServiceView } from '../agent/lb-status.js';
import { LB_DRAINS_PATH, lbDrainsReplySchema } from '../agent/lb-protocol.js';
import { CliError, EXIT_FINDINGS, EXIT_INPUT, exitStatus } from './exit.js';
import { note } from './output.js';
import { readTokenFile } from './serve.js';

interface LbDirOptions {
  readonly labDir?: string;
}

interface DrainOptions extends LbDirOptions {
  readonly server?: string;
  readonly tokenFile?: string;
}

interface StatusOptions extends LbDirOptions {
  readonly json?: boolean;
  readonly server?: string;
  readonly tokenFile?: string;
}

const dirOf = (o: LbDirOptions): string => resolve(o.labDir ?? defaultLabDir(DEFAULT_PREFIX));

function serverBase(server: string): string {
  const base = server.replace(/\/+$/, '');
  if (!URL.canParse(base) || !['http:', 'https:'].includes(new URL(base).protocol)) throw new CliError(`--server: must be an http:// or https:// URL, got "${server}"`);
  return base;
}

async function fromServer(server: string, svc: string | undefined, tokenFile: string | undefined): Promise<ServiceView[]> {
  const base = serverBase(server);
  const headers: Record<string, string> = tokenFile !== undefined ? { authorization: `Bearer ${readTokenFile(tokenFile)}` } : {};
  let res: Response;
  try {
    res = await fetch(`${base}/api/services`, { headers });
  } catch (e) {
    throw new CliError(`cannot reach weir server at ${base}: ${(e as Error).cause ? String((e as Error).cause) : (e as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as { services?: ServiceView[]; message?: string };
  if (!res.ok) throw new CliError(`${base}: ${res.status === 401 ? `${body.message ?? 'a token is needed'} (--token-file)` : (body.message ?? `HTTP ${res.status}`)}`);
  const all = body.services ?? [];
  return svc === undefined ? all : all.filter((v) => v.service === svc || v.name === svc);
}

const pct = (x: number | undefined): string => (x === undefined ? '-' : `${(100 * x).toFixed(1)}%`);

/** The table text of `weir lb status`. */
export function formatServiceViews(views: readonly ServiceView[]): string {
  const out: string[] = [];
  for (const v of views) {
    const where = v.frontend === 'node-port' ? `NodePort ${v.port}` : `${v.clusterIP ?? '-'}:${v.port}`;
    out.push(`${v.service} ${where}/${v.protocol} (${v.mode})`);
    const rows: string[][] = [['NODE', 'ENDPOINT', 'POD', 'LOCATION', 'WEIGHT', 'HEALTH', 'LATENCY', 'ERRORS', 'IN-FLIGHT', 'CONNS', 'SHARE']];
    for (const n of v.nodes) {
      for (const e of n.endpoints) {
        rows.push([
          n.node,
          e.key,
          e.pod ?? '-',
          e.location ?? '-',
          `${e.weight}`,
          e.healthy ? (e.drained ? 'drained' : 'ok') : 'FAILING',
          e.latencyMs !== undefined ? `${e.latencyMs.toFixed(1)} ms` : '-',
          pct(e.errorRate),
          `${e.inFlight}`,
          `${e.connections}`,
          pct(e.recentShare),
        ]);
      }
      if (n.endpoints.length === 0) rows.push([n.node, '(no endpoint)', '-', '-', '-', '-', '-', '-', '-', '-', '-']);
      for (const note of n.notes) rows.push([n.node, `note: ${note}`]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.filter((r) => r.length > 2).map((r) => (r[i] ?? '').length)));
    for (const r of rows) out.push(`  ${r.length > 2 ? r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd() : r.join('  ')}`);
    out.push('');
  }
  return out.join('\n');
}

async function runStatus(svc: string | undefined, o: StatusOptions): Promise<void> {
  let views: ServiceView[];
  if (o.server !== undefined) {
    views = await fromServer(o.server, svc, o.tokenFile);
  } else {
    const dir = dirOf(o);
    const { statuses, errors } = await readLbStatuses(dir);
    for (const e of errors) note(`warning: ${e}`);
    if (statuses.length === 0) throw new CliError(`no balancing status in ${dir}: no agent with Services runs there (is the lab up? pass --lab-dir)`, EXIT_INPUT);
    for (const s of statuses) {
      for (const p of s.problems) note(`${s.node}: ${p}`);
      // The files outlive their agents (`lab down` leaves them): say when one is old.
      const age = (Date.now() - Date.parse(s.updatedAt)) / 1000;
      if (age > 10) note(`warning: ${s.node}: this status is ${Math.round(age)} s old (is its agent running?)`);
    }
    views = serviceViews(statuses, svc);
  }
  if (svc !== undefined && views.length === 0) throw new CliError(`no Service "${svc}" (give namespace/name or name)`, EXIT_INPUT);
  if (views.some((v) => v.nodes.some((n) => n.reject))) exitStatus.raise(EXIT_FINDINGS);
  process.stdout.write(o.json ? `${JSON.stringify({ services: views }, null, 2)}\n` : views.length === 0 ? 'no Services\n' : formatServiceViews(views));
}

/** `drain`/`undrain --server`: PUT or DELETE /api/lb/drains/LOCATION (the token is required). */
async function drainOnServer(server: string, location: string, drained: boolean, tokenFile: string | undefined): Promise<string[]> {
  const base = serverBase(server);
  if (!LOCATION_NAME.test(location)) throw new CliError(`"${location}" is not a location name (a label value: letters, digits, '-', '_', '.', at most 63)`, EXIT_INPUT);
  if (tokenFile === undefined) throw new CliError('--server needs --token-file: a drain on the server is a write, and writes need its token', EXIT_INPUT);
  const token = readTokenFile(tokenFile);
  let res: Response;
  try {
    res = await fetch(`${base}${LB_DRAINS_PATH}/${encodeURIComponent(location)}`, { method: drained ? 'PUT' : 'DELETE', headers: { authorization: `Bearer ${token}` } });
  } catch (e) {
    throw new CliError(`cannot reach weir server at ${base}: ${(e as Error).cause ? String((e as Error).cause) : (e as Error).message}`);
  }
  const body = (await res.json().catch(() => ({}))) as { drained?: unknown; message?: string };
  if (!res.ok) throw new CliError(`${base}: ${body.message ?? `HTTP ${res.status}`}`);
  const parsed = lbDrainsReplySchema.safeParse(body);
  if (!parsed.success) throw new CliError(`${base}: the answer is not a list of drained locations`);
  return parsed.data.drained;
}

async function runDrain(location: string, drained: boolean, o: DrainOptions): Promise<void> {
  let list: string[];
  if (o.server !== undefined) {
    list = await drainOnServer(o.server, location, drained, o.tokenFile);
  } else {
    try {
      list = await setDrain(dirOf(o), location, drained);
    } catch (e) {
      throw new CliError((e as Error).message, EXIT_INPUT, e);
    }
  }
  process.stdout.write(`${drained ? 'drained' : 'undrained'} ${location}; drained locations now: ${list.length > 0 ? list.join(', ') : 'none'}\n`);
}

export function registerLbCommands(program: Command): void {
  const lb = program.command('lb').description('Services at run time: endpoint weights, health, drains');
  const labDirOption = (c: Command): Command => c.option('--lab-dir <dir>', 'lab directory (default: $WEIR_LAB_DIR, else /run/weir/lab)');
  labDirOption(
    lb
      .command('status [service]')
      .description("each Service's endpoints: location, weight, health, latency, error rate, requests in flight, share of recent connections")
      .option('--json', 'JSON instead of the table')
      .option('--server <url>', 'ask a weir server (`weir serve`) instead of reading the lab directory')
      .option('--token-file <file>', "the server's bearer token"),
  )
    .addHelpText(
      'after',
      `
Exit code 1 when a Service port rejects connections (no endpoint it may use).

Examples:
  $ sudo weir lb status --lab-dir /tmp/lab
  $ sudo weir lb status shop/web --json
  $ weir lb status --server http://127.0.0.1:7070`,
    )
    .action((svc: string | undefined, o: StatusOptions) => runStatus(svc, o));
  const serverOptions = (c: Command): Command =>
    c.option('--server <url>', 'set it on a weir server (cluster mode: agents fetch drains from it) instead of the lab directory').option('--token-file <file>', "the server's bearer token (required with --server)");
  serverOptions(labDirOption(lb.command('drain <location>').description('send no new connections to endpoints in LOCATION (established ones finish)')))
    .addHelpText('after', '\nExamples:\n  $ sudo weir lb drain eu-west --lab-dir /tmp/lab\n  $ weir lb drain eu-west --server https://weir.example:7680 --token-file token')
    .action((location: string, o: DrainOptions) => runDrain(location, true, o));
  serverOptions(labDirOption(lb.command('undrain <location>').description('let LOCATION receive new connections again')))
    .addHelpText('after', '\nExamples:\n  $ sudo weir lb undrain eu-west --lab-dir /tmp/lab\n  $ weir lb undrain eu-west --server https://weir.example:7680 --token-file token')
    .action((location: string, o: DrainOptions) => runDrain(location, false, o));
}
