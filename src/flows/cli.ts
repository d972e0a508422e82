// `weir flows`: query or follow flows on a weir server. The CLI entry wires these options to
// commander flags (--from-namespace, --from-pod, --to-namespace, --to-pod, --verdict, --port,
// --protocol, --policy, --since, --until, --limit, --follow, --output, --server).
import { endpointLabelPlain } from './format.js';
import { FilterError, parseFlowFilter } from './filter.js';
import type { FlowRecord } from './record.js';
import type { FanOutSource } from './ship-protocol.js';
import { readSse } from './sse-client.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:7680';

export interface FlowsCliOptions {
  fromNamespace?: string;
  fromPod?: string;
  toNamespace?: string;
  toPod?: string;
  verdict?: string;
  port?: string | number;
  protocol?: string;
  policy?: string;
  since?: string;
  until?: string;
  limit?: string | number;
  follow?: boolean;
  output?: string;
  server?: string;
  /** Bearer token of a server started with --token-file. */
  token?: string;
}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
}

const defaultIo: CliIo = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** Flag → query parameter (the API's names). */
export function flowsQuery(o: FlowsCliOptions): Record<string, string> {
  const q: Record<string, string> = {};
  const set = (k: string, v: string | number | undefined): void => {
    if (v !== undefined && v !== '') q[k] = String(v);
  };
  set('from_namespace', o.fromNamespace);
  set('from_pod', o.fromPod);
  set('to_namespace', o.toNamespace);
  set('to_pod', o.toPod);
  set('verdict', o.verdict);
  set('port', o.port);
  set('protocol', o.protocol);
  set('policy', o.policy);
  set('since', o.since);
  set('until', o.until);
  set('limit', o.limit);
  return q;
}

const CLI_FLAG: Record<string, string> = {
  from_namespace: '--from-namespace',
  from_pod: '--from-pod',
  to_namespace: '--to-namespace',
  to_pod: '--to-pod',
  verdict: '--verdict',
  port: '--port',
  protocol: '--protocol',
  policy: '--policy',
  since: '--since',
  until: '--until',
  limit: '--limit',
};

const COLUMNS = ['TIME', 'NODE', 'SOURCE', 'DESTINATION', 'PROTO', 'VERDICT', 'POLICY', 'RULE', 'BYTES'] as const;

function row(f: FlowRecord): string[] {
  return [
    new Date(f.time).toISOString().replace('T', ' ').replace('Z', ''),
    f.node,
    `${endpointLabelPlain(f.src)}${f.srcPort ? `:${f.srcPort}` : ''}`,
    `${endpointLabelPlain(f.dst)}:${f.dstPort}`,
    f.protocol,
    f.verdict,
    f.policy,
    f.rule,
    String(f.bytes),
  ];
}

export function formatFlowTable(flows: readonly FlowRecord[], header = true): string {
  const rows = flows.map(row);
  const all = header ? [[...COLUMNS], ...rows] : rows;
  const widths = COLUMNS.map((c, i) => Math.max(header ? c.length : 0, ...rows.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + (all.length ? '\n' : '');
}

/** Runs the command; resolves to the process exit code. `signal` ends --follow. */
export async function runFlowsCommand(o: FlowsCliOptions, io: CliIo = defaultIo, signal?: AbortSignal): Promise<number> {
  const output = o.output ?? 'table';
  if (output !== 'json' && output !== 'table') {
    io.err(`error: --output: must be json or table, got "${output}"\n`);
    return 2;
  }
  const server = (o.server ?? DEFAULT_SERVER).replace(/\/+$/, '');
  if (!URL.canParse(server) || !['http:', 'https:'].includes(new URL(server).protocol)) {
    io.err(`error: --server: must be an http:// or https:// URL, got "${o.server ?? ''}"\n`);
    return 2;
  }
  const headers: Record<string, string> = o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {};
  const q = flowsQuery(o);
  try {
    parseFlowFilter(q);
  } catch (e) {
    if (e instanceof FilterError) {
      io.err(`error: ${CLI_FLAG[e.field] ?? e.field}: ${e.message.slice(e.field.length + 2)}\n`);
      return 2;
    }
    throw e;
  }
  try {
    if (!o.follow) {
      const res = await fetch(`${server}/api/flows?${new URLSearchParams(q).toString()}`, { headers, ...(signal ? { signal } : {}) });
      const body = (await res.json().catch(() => ({}))) as { flows?: FlowRecord[]; message?: string; partial?: boolean; sources?: FanOutSource[] };
      if (!res.ok) {
        io.err(`error: ${res.status === 401 ? `${server} refused the request: ${body.message ?? 'a token is needed'} (--token-file)` : (body.message ?? `HTTP ${res.status}`)}\n`);
        return res.status === 400 || res.status === 401 || res.status === 403 ? 2 : 1;
      }
      // Oldest first on a terminal, like `hubble observe`.
      const flows = [...(body.flows ?? [])].reverse();
      io.out(output === 'json' ? flows.map((f) => JSON.stringify(f)).join('\n') + (flows.length ? '\n' : '') : formatFlowTable(flows));
      // Cluster mode: the server asked the agents; one that did not answer makes the result partial.
      const missing = (body.sources ?? []).filter((src) => !src.ok);
      for (const m of missing) io.err(`warning: partial result: the agent of node ${m.node} (${m.url}) did not answer: ${m.error ?? 'no reply'}\n`);
      return missing.length > 0 || body.partial === true ? 1 : 0;
    }
    const { limit: _l, since: _s, until: _u, ...live } = q;
    let header = output === 'table';
    for await (const ev of readSse(`${server}/api/stream?${new URLSearchParams(live).toString()}`, signal, headers)) {
      if (ev.event === 'gap') {
        const gap = JSON.parse(ev.data) as { flows: number; batches: number };
        io.err(`warning: this client fell behind: ${gap.flows} flows in ${gap.batches} batches were not sent\n`);
        continue;
      }
      if (ev.event !== 'batch') continue;
      const flows = (JSON.parse(ev.data) as { flows: FlowRecord[] }).flows;
      if (flows.length === 0) continue;
      io.out(output === 'json' ? flows.map((f) => JSON.stringify(f)).join('\n') + '\n' : formatFlowTable(flows, header));
      header = false;
    }
    return 0;
  } catch (e) {
    if (signal?.aborted) return 0;
    io.err(`error: cannot reach weir server at ${server}: ${(e as Error).cause ? String((e as Error).cause) : (e as Error).message}\n`);
    return 1;
  }
}
