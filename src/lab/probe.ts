// Probes with real packets: one prober process per source namespace (pods and the external
// host), every target as JSON on its stdin, results as JSON on its stdout. The result is a
// reachability matrix per port/protocol, printable like the upstream NetworkPolicy e2e
// "reachability table" ("." reachable, "X" not).

import type { Protocol } from '../model/cluster.js';
import { runInNetns } from '../exec/run.js';
import { parsePortText, PortTextError, type PortText } from '../net/port.js';
import { PROBER_SCRIPT, assetPath } from './processes.js';
import type { LabPort, LabState } from './state.js';
import { forEachLimit } from './topology.js';

export interface PortSpec {
  readonly port: number;
  readonly protocol: Exclude<Protocol, 'SCTP'>;
}

export const EXTERNAL_PEER = 'external';

export interface ProbeOptions {
  /** Ports to probe on every target; default: each target's served ports. */
  readonly ports?: readonly PortSpec[];
  /** Source peers (`ns/pod` or `external`); default: all pods and the external host. */
  readonly from?: readonly string[];
  /**
   * Target peers; default: all pods and the external host. A node (`node-1`) is a target only
   * when named, and only with `ports`: the lab runs no server on nodes (start one with
   * `lab exec node-1 -- …`); its address is the node's underlay address, which ANP `nodes`
   * peers match.
   */
  readonly to?: readonly string[];
  /** Include the external host in the default peer lists (default true). */
  readonly external?: boolean;
  /** Per-attempt timeout (default 1000 ms): TCP connect+reply, each UDP attempt. */
  readonly timeoutMs?: number;
  /** UDP attempts (default 2: one retry). */
  readonly udpAttempts?: number;
  /** Probes in flight per source (default 64). */
  readonly concurrency?: number;
  /** Prober processes in flight (default 32). */
  readonly sources?: number;
}

export type ProbeError = 'timeout' | 'refused' | 'no-reply' | string;

export interface ProbeCell {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: PortSpec['protocol'];
  readonly ok: boolean;
  /** The server's identity line (`ns/pod` or `external`) when it answered. */
  readonly reply?: string;
  readonly error?: ProbeError;
  readonly ms: number;
}

export interface ProbeResult {
  /** Row/column order of the matrices. */
  readonly from: readonly string[];
  readonly to: readonly string[];
  /** Every port/protocol probed, sorted. */
  readonly ports: readonly PortSpec[];
  readonly cells: readonly ProbeCell[];
  readonly durationMs: number;
}

interface Peer {
  readonly id: string;
  readonly netns: string;
  readonly ip: string;
  readonly served: readonly LabPort[];
}

/** Parses `80`, `80/TCP`, `53/udp` (src/net/port.ts); SCTP is refused (the kernel has no SCTP). */
export function parsePortSpec(text: string): PortSpec {
  let parsed: PortText;
  try {
    parsed = parsePortText(text);
  } catch (e) {
    throw new Error(`invalid port "${text}": expected PORT or PORT/TCP or PORT/UDP${e instanceof PortTextError && e.reason !== 'syntax' ? ` (${e.message})` : ''}`, { cause: e });
  }
  const protocol = parsed.protocol ?? 'TCP';
  if (protocol === 'SCTP') throw new Error(`cannot probe ${text}: this kernel has no SCTP (the analyzer checks SCTP rules)`);
  return { port: parsed.port as number, protocol };
}

export function portLabel(p: PortSpec): string {
  return `${p.port}/${p.protocol}`;
}

function peers(state: LabState): Peer[] {
  return [
    ...state.pods.map((p) => ({ id: p.key, netns: p.netns, ip: p.ip, served: p.served })),
    { id: EXTERNAL_PEER, netns: state.external.netns, ip: state.external.ip, served: state.external.served },
  ];
}

function nodePeers(state: LabState): Peer[] {
  return state.nodes.map((n) => ({ id: n.name, netns: n.netns, ip: n.underlayIp, served: [] }));
}

function select(all: readonly Peer[], ids: readonly string[] | undefined, external: boolean, nodes: readonly Peer[] = []): Peer[] {
  if (!ids) return all.filter((p) => external || p.id !== EXTERNAL_PEER);
  const byId = new Map([...all, ...nodes].map((p) => [p.id, p]));
  return ids.map((id) => {
    const peer = byId.get(id);
    if (!peer) throw new Error(`unknown probe peer "${id}": expected namespace/pod or "${EXTERNAL_PEER}"${nodes.length > 0 ? ' or a node name' : ''}`);
    return peer;
  });
}

export interface ProberTarget {
  readonly id: string;
  readonly to: string;
  readonly ip: string;
  readonly port: number;
  readonly protocol: PortSpec['protocol'];
}

export interface ProberResult {
  readonly id: string;
  readonly ok: boolean;
  readonly reply?: string;
  readonly error?: string;
  readonly ms: number;
}

/** One prober process in `netns` over `targets` (src/lab/prober.mjs); its results by target id. */
async function runProber(
  netns: string,
  targets: readonly ProberTarget[],
  opts: { readonly timeoutMs: number; readonly udpAttempts: number; readonly concurrency: number },
): Promise<ProberResult[]> {
  const waves = Math.ceil(targets.length / opts.concurrency);
  const budget = waves * opts.timeoutMs * Math.max(1, opts.udpAttempts) + 15_000;
  const input = JSON.stringify({ targets, ...opts });
  const { stdout } = await runInNetns(netns, [process.execPath, assetPath(PROBER_SCRIPT)], input, { timeoutMs: budget });
  return JSON.parse(stdout) as ProberResult[];
}

/** Probes `targets` from `src`'s namespace: one cell per target, as `lab probe` reports them. */
export async function probeCells(
  src: { readonly id: string; readonly netns: string },
  targets: readonly ProberTarget[],
  opts: { readonly timeoutMs: number; readonly udpAttempts: number; readonly concurrency: number },
): Promise<ProbeCell[]> {
  const cells: ProbeCell[] = [];
  for (const r of await runProber(src.netns, targets, opts)) {
    const t = targets[Number(r.id)];
    if (!t) continue;
    cells.push({
      from: src.id,
      to: t.to,
      port: t.port,
      protocol: t.protocol,
      ok: r.ok,
      ...(r.reply !== undefined ? { reply: r.reply } : {}),
      ...(r.error !== undefined ? { error: r.error } : {}),
      ms: r.ms,
    });
  }
  return cells;
}

/** Probes from every source to every target; see ProbeOptions for the defaults. */
export async function probe(state: LabState, opts: ProbeOptions = {}): Promise<ProbeResult> {
  if (state.status !== 'up') throw new Error(`the lab in ${state.dir} is not up (status ${state.status})`);
  const started = Date.now();
  const all = peers(state);
  const external = opts.external ?? true;
  const from = select(all, opts.from, external);
  const nodes = nodePeers(state);
  const to = select(all, opts.to, external, nodes);
  const unported = to.find((t) => t.served.length === 0 && nodes.includes(t) && !opts.ports);
  if (unported) throw new Error(`probing node ${unported.id} needs --port: the lab runs no server on nodes`);
  const timeoutMs = opts.timeoutMs ?? 1000;
  const udpAttempts = opts.udpAttempts ?? 2;
  const concurrency = opts.concurrency ?? 64;
  const portsFor = (target: Peer): readonly PortSpec[] =>
    opts.ports ?? target.served.flatMap((p) => (p.protocol === 'SCTP' ? [] : [{ port: p.port, protocol: p.protocol }]));

  const cells: ProbeCell[] = [];
  await forEachLimit(from, opts.sources ?? 32, async (src) => {
    const targets: ProberTarget[] = [];
    for (const dst of to) {
      for (const p of portsFor(dst)) {
        targets.push({ id: String(targets.length), to: dst.id, ip: dst.ip, port: p.port, protocol: p.protocol });
      }
    }
    if (targets.length === 0) return;
    cells.push(...(await probeCells(src, targets, { timeoutMs, udpAttempts, concurrency })));
  });

  const ports = new Map<string, PortSpec>();
  for (const c of cells) ports.set(portLabel(c), { port: c.port, protocol: c.protocol });
  const sortedPorts = [...ports.values()].sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
  const order = (ids: readonly Peer[]): string[] => ids.map((p) => p.id);
  const index = new Map([...all, ...nodes].map((p, i) => [p.id, i]));
  cells.sort(
    (a, b) =>
      (index.get(a.from) ?? 0) - (index.get(b.from) ?? 0) ||
      (index.get(a.to) ?? 0) - (index.get(b.to) ?? 0) ||
      a.port - b.port ||
      a.protocol.localeCompare(b.protocol),
  );
  return { from: order(from), to: order(to), ports: sortedPorts, cells, durationMs: Date.now() - started };
}

/** `matrix[from][to]`: true reachable, false not, undefined not probed, for one port. */
export function reachabilityMatrix(result: ProbeResult, port: PortSpec): Map<string, Map<string, boolean>> {
  const m = new Map<string, Map<string, boolean>>();
  for (const c of result.cells) {
    if (c.port !== port.port || c.protocol !== port.protocol) continue;
    const row = m.get(c.from) ?? new Map<string, boolean>();
    row.set(c.to, c.ok);
    m.set(c.from, row);
  }
  return m;
}

/**
 * One table per port/protocol in the upstream e2e layout: rows are sources, columns are
 * targets, "." reachable, "X" not reachable, "-" not probed (the target does not serve it).
 */
export function formatReachability(result: ProbeResult): string {
  const blocks: string[] = [];
  for (const port of result.ports) {
    const m = reachabilityMatrix(result, port);
    const width = Math.max(...result.to.map((t) => t.length), 1);
    const rowWidth = Math.max(...result.from.map((f) => f.length), 1);
    const pad = (s: string, w: number): string => s.padEnd(w);
    const lines = [`reachability ${portLabel(port)}:`, [pad('-', rowWidth), ...result.to.map((t) => pad(t, width))].join(' ')];
    for (const from of result.from) {
      const row = m.get(from);
      const cells = result.to.map((to) => {
        const v = row?.get(to);
        return pad(v === undefined ? '-' : v ? '.' : 'X', width);
      });
      lines.push([pad(from, rowWidth), ...cells].join(' ').trimEnd());
    }
    const probed = result.cells.filter((c) => c.port === port.port && c.protocol === port.protocol);
    const ok = probed.filter((c) => c.ok).length;
    lines.push(`${ok}/${probed.length} reachable`);
    blocks.push(lines.join('\n'));
  }
  return blocks.join('\n\n');
}

/**
 * One line for a whole probe: cells, how many reachable, how the others failed, e.g.
 * `350 cells on 4 ports (80/TCP, 81/TCP, 80/UDP, 81/UDP): 120 reachable, 230 not (timeout 200, refused 30)`.
 */
export function formatProbeSummary(result: ProbeResult): string {
  if (result.cells.length === 0) return 'nothing probed (no target serves the requested ports)';
  const ok = result.cells.filter((c) => c.ok).length;
  const failures = new Map<string, number>();
  for (const c of result.cells) if (!c.ok) failures.set(c.error ?? 'failed', (failures.get(c.error ?? 'failed') ?? 0) + 1);
  const how = [...failures].sort(([a], [b]) => (a < b ? -1 : 1)).map(([e, n]) => `${e} ${n}`);
  const ports = result.ports.map(portLabel);
  const shown = ports.length > 6 ? `${ports.slice(0, 6).join(', ')}, …` : ports.join(', ');
  const n = result.cells.length;
  return (
    `${n} cell${n === 1 ? '' : 's'} on ${ports.length} port${ports.length === 1 ? '' : 's'} (${shown}) in ${Math.round(result.durationMs)} ms: ` +
    `${ok} reachable, ${n - ok} not${how.length > 0 ? ` (${how.join(', ')})` : ''}`
  );
}
