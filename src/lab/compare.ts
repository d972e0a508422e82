// `weir lab probe --compare`: what the engine says against what the kernel did. "One engine,
// many faces" is a claim; this is its test. Every probed cell gets the analyzer's verdict,
// computed from the same desired manifests the agents enforce, with the lab's pod addresses
// (so ipBlocks that cover pod IPs are judged as the kernel sees them), and every cell where
// the packets disagree is listed with the explain() chain of the verdict it should have had.
//
// Pure: plain data in, plain data out; the CLI does the loading and the probing.

import type { Cluster } from '../model/cluster.js';
import { labCluster } from './cluster.js';
import { allows, evaluatePair, explain, externalEndpoint, formatExplanation, parseIp, podEndpoint, PolicyEngine } from '../policy/index.js';
import type { Endpoint, Explanation, Verdict } from '../policy/index.js';
import { EXTERNAL_PEER, portLabel, type ProbeCell, type ProbeResult } from './probe.js';
import type { LabPort, LabState } from './state.js';

/** Why a probed cell is left out of the comparison. */
export type SkipReason =
  /** A peer talking to its own address never leaves its namespace (upstream ignores these cells too). */
  | 'loopback'
  /** Nothing listens there: a failed probe says nothing about policy. */
  | 'not-served';

export interface ComparedCell {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: ProbeCell['protocol'];
  /** The enforced verdict: what the kernel must do. */
  readonly expected: Verdict;
  /** What the probe saw: Allowed when the target's server answered. */
  readonly observed: Verdict;
  /** The probe's failure (`timeout`, `refused`, …) when not reachable. */
  readonly error?: string;
  /** Set when policies in audit mode would change the verdict if they were enforced. */
  readonly audit?: Verdict;
  readonly skipped?: SkipReason;
  /** True when compared and expected ≠ observed. */
  readonly disagrees: boolean;
}

export interface Disagreement {
  readonly cell: ComparedCell;
  /** The engine's reasoning for the expected verdict, rule by rule. */
  readonly explanation: Explanation;
}

export interface Comparison {
  /** Every probed cell, in probe order. */
  readonly cells: readonly ComparedCell[];
  /** Cells actually compared (not skipped). */
  readonly compared: number;
  readonly disagreements: readonly Disagreement[];
  /** Compared cells where audit-mode policies would change the verdict. */
  readonly auditCells: readonly ComparedCell[];
}

// The one lab → cluster join lives in cluster.ts; re-exported for the callers of this module.
export { labCluster } from './cluster.js';

interface PeerInfo {
  readonly endpoint: Endpoint;
  /** Spec explain() resolves back to the same endpoint. */
  readonly spec: string;
  /** Undefined: every probed port counts as served (nodes). */
  readonly served: ReadonlySet<string> | undefined;
}

function servedSet(ports: readonly LabPort[]): Set<string> {
  return new Set(ports.map((p) => `${p.port}/${p.protocol}`));
}

function peerTable(engine: PolicyEngine, state: LabState): Map<string, PeerInfo> {
  const table = new Map<string, PeerInfo>();
  for (const p of state.pods) {
    const pod = engine.pods.get(p.key);
    if (!pod) continue;
    table.set(p.key, { endpoint: podEndpoint(engine, pod), spec: p.key, served: servedSet(p.served) });
  }
  const ip = parseIp(state.external.ip);
  if (ip === undefined) throw new Error(`lab state: external host address "${state.external.ip}" is not an IP address`);
  table.set(EXTERNAL_PEER, { endpoint: externalEndpoint(ip), spec: state.external.ip, served: servedSet(state.external.served) });
  // Nodes are probed only when named (the lab runs no server there): as their underlay
  // address, which ANP `nodes` peers match; whatever was probed counts as served.
  for (const n of state.nodes) {
    const nodeIp = parseIp(n.underlayIp);
    if (nodeIp !== undefined) table.set(n.name, { endpoint: externalEndpoint(nodeIp), spec: n.underlayIp, served: undefined });
  }
  return table;
}

/**
 * Compares a probe with the engine's verdicts. `engine` must be built from `labCluster()` of
 * the desired manifests and the same state the probe ran against.
 */
export function compareProbe(engine: PolicyEngine, state: LabState, result: ProbeResult): Comparison {
  const peers = peerTable(engine, state);
  const cells: ComparedCell[] = [];
  const disagreements: Disagreement[] = [];
  const auditCells: ComparedCell[] = [];
  for (const c of result.cells) {
    const src = peers.get(c.from);
    const dst = peers.get(c.to);
    if (!src || !dst) throw new Error(`probe cell ${c.from} -> ${c.to} names a peer the lab state does not have`);
    const enforce = evaluatePair(engine, src.endpoint, dst.endpoint, 'enforce').allowed;
    const full = evaluatePair(engine, src.endpoint, dst.endpoint, 'full').allowed;
    const expected: Verdict = allows(enforce, c.protocol, c.port) ? 'Allowed' : 'Denied';
    const fullVerdict: Verdict = allows(full, c.protocol, c.port) ? 'Allowed' : 'Denied';
    const observed: Verdict = c.ok ? 'Allowed' : 'Denied';
    const skipped: SkipReason | undefined = c.from === c.to ? 'loopback' : dst.served !== undefined && !dst.served.has(portLabel(c)) ? 'not-served' : undefined;
    const cell: ComparedCell = {
      from: c.from,
      to: c.to,
      port: c.port,
      protocol: c.protocol,
      expected,
      observed,
      ...(c.ok || c.error === undefined ? {} : { error: c.error }),
      ...(fullVerdict !== expected ? { audit: fullVerdict } : {}),
      ...(skipped ? { skipped } : {}),
      disagrees: skipped === undefined && expected !== observed,
    };
    cells.push(cell);
    if (skipped) continue;
    if (cell.audit) auditCells.push(cell);
    if (cell.disagrees) disagreements.push({ cell, explanation: explain(engine, src.spec, dst.spec, c.protocol, c.port) });
  }
  return { cells, compared: cells.filter((c) => !c.skipped).length, disagreements, auditCells };
}

/**
 * Cells worth probing again: the engine allows them but the probe timed out. On a loaded
 * machine a connect can miss a short timeout; a cell that got through where the engine denies
 * is never retried (that is a real disagreement, not a slow reply). Bounded to `limit` cells.
 */
export function timedOutAllowedCells(cmp: Comparison, limit = 64): ComparedCell[] {
  return cmp.disagreements
    .map((d) => d.cell)
    .filter((c) => c.expected === 'Allowed' && (c.error === 'timeout' || c.error === 'no-reply'))
    .slice(0, limit);
}

/** Replaces cells of `result` by the same cells from `retry` (matched by from, to, port, protocol). */
export function mergeProbeCells(result: ProbeResult, retry: readonly ProbeResult[]): ProbeResult {
  const key = (c: { from: string; to: string; port: number; protocol: string }) => `${c.from}|${c.to}|${c.port}|${c.protocol}`;
  const again = new Map(retry.flatMap((r) => r.cells).map((c) => [key(c), c]));
  return { ...result, cells: result.cells.map((c) => again.get(key(c)) ?? c) };
}

/** Builds the engine from the desired manifests and the lab state, then compares. */
export function compareWithDesired(desired: Cluster, state: LabState, result: ProbeResult): Comparison {
  return compareProbe(new PolicyEngine(labCluster(desired, state)), state, result);
}

function cellName(c: ComparedCell): string {
  return `${c.from} -> ${c.to} ${c.port}/${c.protocol}`;
}

function auditNote(c: ComparedCell): string {
  return c.audit ? ` (audit: would ${c.audit === 'Denied' ? 'deny' : 'allow'})` : '';
}

/**
 * Text report: every disagreeing cell with the engine's explanation, the cells audit-mode
 * policies would change (at most `auditLimit`, default all), and one summary line
 * ("N cells, 0 disagreements").
 */
export function formatComparison(cmp: Comparison, opts: { readonly auditLimit?: number } = {}): string {
  const lines: string[] = [];
  for (const d of cmp.disagreements) {
    const c = d.cell;
    const seen = c.observed === 'Allowed' ? 'reachable' : `not reachable${c.error ? ` (${c.error})` : ''}`;
    lines.push(`DISAGREE ${cellName(c)}: the engine says ${c.expected.toUpperCase()}, the kernel: ${seen}${auditNote(c)}`);
    for (const l of formatExplanation(d.explanation).split('\n')) lines.push(`    ${l}`);
  }
  const audits = cmp.auditCells.length;
  if (audits > 0) {
    const limit = opts.auditLimit ?? audits;
    lines.push(`${audits} cell${audits === 1 ? '' : 's'} where audit-mode policies would change the verdict:`);
    for (const c of cmp.auditCells.slice(0, limit)) lines.push(`  ${cellName(c)}: ${c.expected}${auditNote(c)}`);
    if (audits > limit) lines.push(`  … and ${audits - limit} more (--matrix or --output json lists them all)`);
  }
  const skipped = cmp.cells.length - cmp.compared;
  const n = cmp.disagreements.length;
  lines.push(
    `${cmp.compared} cell${cmp.compared === 1 ? '' : 's'}, ${n} disagreement${n === 1 ? '' : 's'}` +
      (skipped > 0 ? ` (${skipped} not compared: loopback or not served)` : '') +
      (audits > 0 ? `; ${audits} audit change${audits === 1 ? '' : 's'}` : ''),
  );
  return lines.join('\n');
}

/** JSON form: the comparison with explanations, for `--output json`. */
export function comparisonJson(cmp: Comparison): unknown {
  return {
    cells: cmp.compared,
    disagreements: cmp.disagreements.map((d) => ({ ...d.cell, explanation: d.explanation })),
    audit: cmp.auditCells,
    matrix: cmp.cells,
  };
}
