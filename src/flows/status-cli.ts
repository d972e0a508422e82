// `weir status`: the agents a cluster server knows, from what they report with every batch or
// heartbeat (GET /api/agents): node, version, last sync and its lag, ruleset size, apply
// errors, last ship, buffer fill and flows lost to a full buffer.
import { agentsReplySchema, AGENTS_PATH, type AgentInfo, type AgentsReply } from './ship-protocol.js';
import type { CliIo } from './cli.js';

/** An agent silent for longer than this is shown as stale (it heartbeats every 5 s). */
export const STALE_MS = 30_000;

export interface StatusCliOptions {
  server: string;
  token?: string;
  output?: string;
}

function ago(now: number, iso: string | undefined): string {
  if (iso === undefined) return '-';
  const ms = now - Date.parse(iso);
  return Number.isFinite(ms) ? duration(ms) : '-';
}

function duration(ms: number): string {
  if (ms < 1_000) return `${Math.max(0, Math.round(ms))}ms`;
  if (ms < 120_000) return `${Math.round(ms / 1_000)}s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)}m`;
  return `${Math.round(ms / 3_600_000)}h`;
}

function pct(a: number, b: number): string {
  return b > 0 ? `${Math.round((a / b) * 100)}%` : '-';
}

const COLUMNS = ['NODE', 'VERSION', 'STATE', 'LAST SYNC', 'LAG', 'RULES', 'ERRORS', 'LAST SHIP', 'BUFFER', 'LOST FLOWS', 'FLOWS'] as const;

export function agentState(a: AgentInfo, now: number): string {
  if (now - a.lastSeen > STALE_MS) return `stale ${duration(now - a.lastSeen)}`;
  if (a.report.sync.lastApplyOk === false) return 'apply failed';
  if (a.report.ship.lostFlows > 0) return 'lossy';
  return 'ok';
}

export function formatStatusTable(reply: AgentsReply): string {
  const now = reply.now;
  const rows = reply.agents.map((a) => {
    const r = a.report;
    return [
      a.node,
      r.version,
      agentState(a, now),
      ago(now, r.sync.lastSyncAt),
      r.sync.lagMs !== undefined ? duration(r.sync.lagMs) : '-',
      r.sync.rules !== undefined ? String(r.sync.rules) : '-',
      String(r.sync.errors ?? 0),
      ago(now, r.ship.lastShipAt),
      `${r.ship.bufferedBatches} (${pct(r.ship.bufferedBytes, r.ship.bufferLimitBytes)})`,
      String(r.ship.lostFlows),
      String(a.flows),
    ];
  });
  if (rows.length === 0) return 'no agent has reported to this server yet (start them with `weir agent --server URL --token-file FILE`)\n';
  const all = [[...COLUMNS], ...rows];
  const widths = COLUMNS.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}

/** Resolves to the exit code: 0 every agent ok, 1 unreachable or an agent stale/failing/lossy, 2 bad arguments or token. */
export async function runStatusCommand(o: StatusCliOptions, io: CliIo): Promise<number> {
  const output = o.output ?? 'table';
  if (output !== 'json' && output !== 'table') {
    io.err(`error: --output: must be json or table, got "${output}"\n`);
    return 2;
  }
  const server = o.server.replace(/\/+$/, '');
  if (!URL.canParse(server) || !['http:', 'https:'].includes(new URL(server).protocol)) {
    io.err(`error: --server: must be an http:// or https:// URL, got "${o.server}"\n`);
    return 2;
  }
  let res: Response;
  try {
    res = await fetch(`${server}${AGENTS_PATH}`, { headers: o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}, signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    io.err(`error: cannot reach weir server at ${server}: ${(e as Error).cause ? String((e as Error).cause) : (e as Error).message}\n`);
    return 1;
  }
  const body: unknown = await res.json().catch(() => ({}));
  if (!res.ok) {
    const message = (body as { message?: string }).message ?? `HTTP ${res.status}`;
    io.err(`error: ${res.status === 401 ? `${server} refused the request: ${message} (--token-file)` : message}\n`);
    return res.status === 401 || res.status === 403 ? 2 : 1;
  }
  const parsed = agentsReplySchema.safeParse(body);
  if (!parsed.success) {
    io.err(`error: ${server}${AGENTS_PATH}: not a weir agents reply (field ${parsed.error.issues[0]?.path.join('.') ?? '?'})\n`);
    return 1;
  }
  const reply = parsed.data;
  io.out(output === 'json' ? `${JSON.stringify(reply, null, 2)}\n` : formatStatusTable(reply));
  return reply.agents.every((a) => agentState(a, reply.now) === 'ok') ? 0 : 1;
}
