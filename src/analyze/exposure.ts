// Exposure analysis (`weir analyze --exposure`), after np-guard's netpol-analyzer: which
// workloads the policies leave reachable from — or able to reach — the entire cluster, any
// namespace or pod matching given labels (including namespaces and pods that do not exist yet),
// and external addresses; and which workloads no policy protects.
//
// A rule peer given by label selectors stands for every pod those selectors could ever match:
// a *representative* peer. Each workload's program is evaluated once per representative, with a
// hypothetical pod that belongs exactly to the groups whose selectors its own selectors imply.

import type { LabelSelector } from '../model/cluster.js';
import {
  evaluateVerdicts,
  formatConns,
  union,
  isEmpty,
  subtract,
  type ConnSet,
  type ConnectivityResult,
  type Direction,
  type DirectionProgram,
  type Group,
  type PolicyEngine,
} from '../policy/index.js';
import { isEmptySelector, matchesSelector } from '../policy/selector.js';
import { clusterNodes, connText, type ConnLine, type ConnNode } from './connlist.js';
import { escapeControl } from './escape.js';

export const ENTIRE_CLUSTER = 'entire-cluster';

export interface ExposureLine {
  /** The exposed workload. */
  readonly workload: string;
  readonly direction: Direction;
  /** `entire-cluster`, `[namespace with {…}]/[pod with {…}]`, `ns/[pod with {…}]` or an address range. */
  readonly peer: string;
  readonly conn: string;
}

export interface ExposureResult {
  readonly egress: readonly ExposureLine[];
  readonly ingress: readonly ExposureLine[];
  /** `ns/w[Kind] is not protected on Ingress|Egress`. */
  readonly unprotected: readonly { readonly workload: string; readonly direction: Direction }[];
}

/** np-guard's selector text: `{app=x}`, expressions as Go prints them. */
function selectorText(sel: LabelSelector): string {
  const parts: string[] = [];
  const ml = sel.matchLabels ?? {};
  for (const k of Object.keys(ml).sort()) parts.push(`${k}=${ml[k]}`);
  for (const e of sel.matchExpressions ?? []) parts.push(`{Key:${e.key},Operator:${e.operator},Values:[${(e.values ?? []).join(' ')}],}`);
  return `{${parts.join(',')}}`;
}

/** The representative peer of a pods group, or undefined when it is the entire cluster. */
function representative(g: Group): string | undefined {
  if (g.spec.kind !== 'pods') return undefined;
  const pods = isEmptySelector(g.spec.podSelector) ? '[all pods]' : `[pod with ${selectorText(g.spec.podSelector)}]`;
  if (g.spec.namespace !== undefined) return `${g.spec.namespace}/${pods}`;
  const nsSel = g.spec.namespaceSelector ?? {};
  if (isEmptySelector(nsSel) && isEmptySelector(g.spec.podSelector)) return undefined;
  return `${isEmptySelector(nsSel) ? '[all namespaces]' : `[namespace with ${selectorText(nsSel)}]`}/${pods}`;
}

function isEntireCluster(g: Group): boolean {
  return g.spec.kind === 'pods' && g.spec.namespace === undefined && isEmptySelector(g.spec.namespaceSelector ?? {}) && isEmptySelector(g.spec.podSelector);
}

/**
 * Does every pod `rep` could stand for belong to group `g`? Only what the selectors imply is
 * known of a hypothetical pod: the same selectors, or a group that selects all pods of the
 * namespaces `rep` is confined to.
 */
function implied(g: Group, rep: Group | undefined): boolean {
  if (g.spec.kind !== 'pods') return false; // a new pod has no known address and is not a node
  if (isEntireCluster(g)) return true;
  if (!rep || rep.spec.kind !== 'pods') return false;
  if (g.id === rep.id) return true;
  if (!isEmptySelector(g.spec.podSelector)) return false;
  if (g.spec.namespace !== undefined) return rep.spec.namespace === g.spec.namespace;
  return rep.spec.namespace === undefined && JSON.stringify(g.spec.namespaceSelector ?? {}) === JSON.stringify(rep.spec.namespaceSelector ?? {});
}

/**
 * A representative the input's pods already stand for: a pod selector confined to one named
 * namespace (the policy's own, or `kubernetes.io/metadata.name` alone) that real pods match.
 */
function coveredByRealPods(engine: PolicyEngine, g: Group): boolean {
  if (g.spec.kind !== 'pods') return false;
  let ns = g.spec.namespace;
  if (ns === undefined) {
    const nsSel = g.spec.namespaceSelector ?? {};
    const keys = Object.keys(nsSel.matchLabels ?? {});
    if (keys.length !== 1 || keys[0] !== 'kubernetes.io/metadata.name' || (nsSel.matchExpressions ?? []).length > 0) return false;
    ns = nsSel.matchLabels?.['kubernetes.io/metadata.name'];
    if (ns === undefined || !engine.cache.namespaces.has(ns)) return false;
  }
  const sel = g.spec.podSelector;
  for (const p of engine.pods.values()) if (p.namespace === ns && matchesSelector(sel, p.labels)) return true;
  return false;
}

function programIsEmpty(p: DirectionProgram): boolean {
  return p.admin.length === 0 && !p.isolated && p.baseline.length === 0 && p.doubtful === undefined;
}

/** Exposure of every workload of an analysis. */
export function exposure(engine: PolicyEngine, result: ConnectivityResult, lines: readonly ConnLine[]): ExposureResult {
  const egress: ExposureLine[] = [];
  const ingress: ExposureLine[] = [];
  const unprotected: { workload: string; direction: Direction }[] = [];
  const nodes = clusterNodes(result);
  for (const node of nodes) {
    const cls = result.classes[node.classes[0]];
    if (!cls.identity || cls.identity.hostNetwork) continue;
    for (const direction of ['egress', 'ingress'] as const) {
      const out = direction === 'egress' ? egress : ingress;
      const program = engine.program(cls.identity.id, direction, result.mode);
      const dstPorts = direction === 'ingress' ? cls.identity.ports : undefined;
      // What might be allowed counts: a policy in doubt must not hide an exposure.
      const evaluate = (rep: Group | undefined): ConnSet => {
        const v = evaluateVerdicts({ program, inGroup: (g: number) => implied(engine.group(g) as Group, rep), dstPorts });
        return union(v.allowed, v.unknown);
      };
      if (programIsEmpty(program)) unprotected.push({ workload: node.name, direction });
      const cluster = evaluate(undefined);
      if (!isEmpty(cluster)) out.push({ workload: node.name, direction, peer: ENTIRE_CLUSTER, conn: formatConns(cluster) });
      const seen = new Set<string>();
      const rules = [...program.admin, ...program.networkPolicy, ...program.baseline];
      for (const r of rules) {
        if (r.peers === 'all') continue;
        for (const gid of r.peers) {
          const g = engine.group(gid) as Group;
          const rep = representative(g);
          if (rep === undefined || seen.has(rep) || coveredByRealPods(engine, g)) continue;
          seen.add(rep);
          const conns = evaluate(g);
          // Only what the representative adds beyond the entire cluster is worth a line.
          if (isEmpty(subtract(conns, cluster))) continue;
          out.push({ workload: node.name, direction, peer: rep, conn: formatConns(conns) });
        }
      }
    }
  }
  // Connections with external addresses are exposure too: copied from the connectivity list.
  for (const l of lines) {
    if (l.dst.kind === 'external' && l.src.kind !== 'external') egress.push({ workload: l.src.name, direction: 'egress', peer: l.dst.name, conn: connText(l) });
    if (l.src.kind === 'external' && l.dst.kind !== 'external') ingress.push({ workload: l.dst.name, direction: 'ingress', peer: l.src.name, conn: connText(l) });
  }
  const order = (a: ExposureLine, b: ExposureLine) => (a.workload < b.workload ? -1 : a.workload > b.workload ? 1 : a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : 0);
  return {
    egress: egress.sort(order),
    ingress: ingress.sort(order),
    unprotected: unprotected.sort((a, b) => (a.workload < b.workload ? -1 : a.workload > b.workload ? 1 : a.direction < b.direction ? -1 : 1)),
  };
}

const DIRECTION_NAME: Record<Direction, string> = { egress: 'Egress', ingress: 'Ingress' };

/** np-guard's section, printed after the connectivity list (a blank line between). */
export function renderExposureTxt(x: ExposureResult): string {
  const width = Math.max(0, ...[...x.egress, ...x.ingress].map((l) => escapeControl(l.workload).length));
  // np-guard's layout: the workload padded to the longest, then a tab before and after the arrow.
  const line = (l: ExposureLine) =>
    `${escapeControl(l.workload).padEnd(width)} \t${l.direction === 'egress' ? '=>' : '<='} \t${escapeControl(l.peer)} : ${escapeControl(l.conn)}`;
  let out = 'Exposure Analysis Result:\n';
  const section = (header: string, rows: string[]) => {
    if (rows.length > 0) out += `${header}\n${rows.join('\n')}\n`;
  };
  section('Egress Exposure:', x.egress.map(line));
  section(`${x.egress.length > 0 ? '\n' : ''}Ingress Exposure:`, x.ingress.map(line));
  section(
    `${x.egress.length + x.ingress.length > 0 ? '\n' : ''}Workloads not protected by network policies:`,
    x.unprotected.map((u) => escapeControl(`${u.workload} is not protected on ${DIRECTION_NAME[u.direction]}`)),
  );
  return out;
}

export function renderExposureMd(x: ExposureResult): string {
  const cell = (s: string) => escapeControl(s).replace(/\|/g, '\\|');
  const rows = ['## Exposure Analysis Result:', '### Egress Exposure:', '| src | dst | conn |', '|-----|-----|------|'];
  for (const l of x.egress) rows.push(`| ${cell(l.workload)} | ${cell(l.peer)} | ${cell(l.conn)} |`);
  rows.push('', '### Ingress Exposure:', '| dst | src | conn |', '|-----|-----|------|');
  for (const l of x.ingress) rows.push(`| ${cell(l.workload)} | ${cell(l.peer)} | ${cell(l.conn)} |`);
  if (x.unprotected.length > 0) {
    rows.push('', '### Workloads not protected by network policies:', '| workload | direction |', '|----------|-----------|');
    for (const u of x.unprotected) rows.push(`| ${cell(u.workload)} | ${DIRECTION_NAME[u.direction]} |`);
  }
  return `${rows.join('\n')}\n`;
}

export function exposureJson(x: ExposureResult): object {
  const item = (l: ExposureLine) => (l.direction === 'egress' ? { src: l.workload, dst: l.peer, conn: l.conn } : { src: l.peer, dst: l.workload, conn: l.conn });
  return {
    egressExposure: x.egress.map(item),
    ingressExposure: x.ingress.map(item),
    unprotected: x.unprotected.map((u) => ({ workload: u.workload, direction: DIRECTION_NAME[u.direction] })),
  };
}

/** For lint: the workload nodes of an analysis, by name. */
export function nodesByName(result: ConnectivityResult): Map<string, ConnNode> {
  return new Map(clusterNodes(result).map((n) => [n.name, n]));
}
