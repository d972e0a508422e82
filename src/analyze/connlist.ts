// The connectivity list: the engine's class × class matrix turned into the lines users read
// and diff — `src => dst : conns` between workloads and external address ranges, in the
// format of np-guard's netpol-analyzer.
//
// The matrix speaks of classes (pods with the same identity and IP atom, external IP atoms).
// Users speak of workloads. Pods of one workload normally share a class; when they do not
// (an ipBlock picks out one replica's address) and their connectivity really differs, the
// pods are listed one by one, so no line ever claims more than the policies allow.

import {
  evaluateSide,
  evaluateSideVerdicts,
  formatConns,
  intersect,
  formatInterval,
  isEmpty,
  type AnalysisClass,
  type ConnSet,
  type ConnectivityResult,
  type Direction,
  type Endpoint,
  type PolicyEngine,
  type Tier,
} from '../policy/index.js';
import { familyOf } from '../policy/ip.js';
import type { Decision } from '../policy/pipeline.js';

export interface ConnNode {
  /** `ns/name[Kind]`, `ns/pod[Pod]` or `a.b.c.d-e.f.g.h[External]`. */
  readonly name: string;
  readonly kind: 'workload' | 'pod' | 'external';
  /** Workload and pod nodes: the namespace. */
  readonly namespace?: string;
  /** Workload and pod nodes: the owning workload's name and kind. */
  readonly workloadName?: string;
  readonly workloadKind?: string;
  /** Analysis classes the node stands for: one for workloads and pods, the atoms of a range. */
  readonly classes: readonly number[];
}

/** One reason a direction allows (part of) a line's connections. */
export interface Reason {
  readonly tier: Tier | 'default';
  readonly action: 'Allow' | 'Pass';
  readonly policy?: string;
  readonly rule?: string;
  readonly priority?: number;
  /** The connections this reason decided (formatConns text). */
  readonly conn: string;
  readonly text: string;
}

export interface LineExplanation {
  readonly egress: readonly Reason[];
  readonly ingress: readonly Reason[];
}

/** Connections a policy in doubt could allow or deny: never shown as allowed. */
export interface UnknownConns {
  readonly conns: ConnSet;
  /** formatConns text. */
  readonly conn: string;
  /** `Kind ns/name field` of each invalid part that could change them. */
  readonly reasons: readonly string[];
}

export interface ConnLine {
  readonly src: ConnNode;
  readonly dst: ConnNode;
  /** Certainly allowed. */
  readonly conns: ConnSet;
  /** formatConns text: `All Connections`, `TCP 80,UDP 53` (`No Connections` when only unknown ones). */
  readonly conn: string;
  readonly unknown?: UnknownConns;
  readonly explanation?: LineExplanation;
}

export interface ConnListOptions {
  /** Keep only lines touching this workload: `ns/name`, `name` or `ns/name[Kind]`. */
  readonly focusWorkload?: string;
  /** Attach, per line, the policy rules that allow it. */
  readonly explain?: boolean;
}

export class FocusNotFoundError extends Error {
  constructor(focus: string) {
    super(`--focus-workload "${focus}" matches no workload (expected ns/name or name)`);
    this.name = 'FocusNotFoundError';
  }
}

const WORKLOAD_KEY = /^([^/]+)\/(.+)\[([A-Za-z]+)\]$/;

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Workload and pod nodes: pods of a workload share a node unless their connectivity differs. */
export function clusterNodes(result: ConnectivityResult): ConnNode[] {
  const n = result.classes.length;
  const byWorkload = new Map<string, { classes: Set<number>; pods: { name: string; namespace: string; cls: number }[] }>();
  for (const c of result.classes) {
    if (c.kind !== 'pod') continue;
    for (const p of c.pods) {
      let w = byWorkload.get(p.workload);
      if (!w) byWorkload.set(p.workload, (w = { classes: new Set(), pods: [] }));
      w.classes.add(c.index);
      w.pods.push({ name: p.name, namespace: p.namespace, cls: c.index });
    }
  }
  const sameConnectivity = (members: Set<number>): boolean => {
    const [first, ...rest] = [...members];
    for (const other of rest) {
      for (let d = 0; d < n; d++) {
        // Traffic inside the workload is a self-loop and never listed, so it cannot tell pods apart.
        if (members.has(d)) continue;
        if (result.connId(first, d) !== result.connId(other, d)) return false;
        if (result.connId(d, first) !== result.connId(d, other)) return false;
        if (result.unknownId(first, d) !== result.unknownId(other, d)) return false;
        if (result.unknownId(d, first) !== result.unknownId(d, other)) return false;
      }
    }
    return true;
  };
  const nodes: ConnNode[] = [];
  for (const [key, w] of byWorkload) {
    const m = WORKLOAD_KEY.exec(key);
    const namespace = m?.[1] ?? w.pods[0].namespace;
    const workloadName = m?.[2] ?? key;
    const workloadKind = m?.[3] ?? 'Pod';
    if (sameConnectivity(w.classes)) {
      nodes.push({ name: key, kind: 'workload', namespace, workloadName, workloadKind, classes: [Math.min(...w.classes)] });
    } else {
      for (const p of w.pods) {
        nodes.push({ name: `${p.namespace}/${p.name}[Pod]`, kind: 'pod', namespace, workloadName, workloadKind, classes: [p.cls] });
      }
    }
  }
  return nodes.sort((a, b) => cmp(a.name, b.name));
}

/**
 * External atoms towards (or from) one cluster node, merged into maximal runs of adjacent
 * atoms of one address family with the same connections.
 */
function externalRuns(
  result: ConnectivityResult,
  externals: readonly AnalysisClass[],
  connOf: (ext: number) => number,
  unknownOf: (ext: number) => number,
): { node: ConnNode; id: number; uid: number }[] {
  const runs: { node: ConnNode; id: number; uid: number }[] = [];
  let cur: { atoms: AnalysisClass[]; id: number; uid: number } | undefined;
  const flush = () => {
    if (!cur || (cur.id === result.conns.none && cur.uid === result.conns.none)) return;
    const first = cur.atoms[0].range;
    const last = cur.atoms[cur.atoms.length - 1].range;
    if (!first || !last) return;
    runs.push({
      node: {
        name: `${formatInterval({ start: first.start, end: last.end })}[External]`,
        kind: 'external',
        classes: cur.atoms.map((a) => a.index),
      },
      id: cur.id,
      uid: cur.uid,
    });
  };
  for (const ext of externals) {
    const id = connOf(ext.index);
    const uid = unknownOf(ext.index);
    const range = ext.range;
    const prev = cur?.atoms[cur.atoms.length - 1].range;
    const adjacent =
      cur !== undefined &&
      prev !== undefined &&
      range !== undefined &&
      prev.end + 1n === range.start &&
      familyOf(prev.start) === familyOf(range.start);
    if (cur && adjacent && cur.id === id && cur.uid === uid) cur.atoms.push(ext);
    else {
      flush();
      cur = { atoms: [ext], id, uid };
    }
  }
  flush();
  return runs;
}

function focusMatches(node: ConnNode, focus: string): boolean {
  if (node.kind === 'external') return false;
  if (focus === node.name) return true;
  const slash = focus.indexOf('/');
  if (slash < 0) return node.workloadName === focus;
  const ns = focus.slice(0, slash);
  const rest = focus.slice(slash + 1);
  return node.namespace === ns && (node.workloadName === rest || `${node.workloadName}[${node.workloadKind}]` === rest);
}

/** Builds the sorted connection lines of an analysis. */
export function connectivityList(engine: PolicyEngine, result: ConnectivityResult, opts: ConnListOptions = {}): ConnLine[] {
  const nodes = clusterNodes(result);
  const externals = result.classes.filter((c) => c.kind === 'external').sort((a, b) => {
    const x = a.range?.start ?? 0n;
    const y = b.range?.start ?? 0n;
    return x < y ? -1 : x > y ? 1 : 0;
  });
  const focus = opts.focusWorkload;
  if (focus !== undefined && !nodes.some((nd) => focusMatches(nd, focus))) throw new FocusNotFoundError(focus);
  const keep = (a: ConnNode, b: ConnNode) => focus === undefined || focusMatches(a, focus) || focusMatches(b, focus);

  const none = result.conns.none;
  const raw: { src: ConnNode; dst: ConnNode; id: number; uid: number }[] = [];
  for (const a of nodes) {
    const ca = a.classes[0];
    for (const b of nodes) {
      if (a === b || !keep(a, b)) continue;
      const id = result.connId(ca, b.classes[0]);
      const uid = result.unknownId(ca, b.classes[0]);
      if (id !== none || uid !== none) raw.push({ src: a, dst: b, id, uid });
    }
    if (!keep(a, a)) continue;
    for (const r of externalRuns(result, externals, (e) => result.connId(ca, e), (e) => result.unknownId(ca, e))) raw.push({ src: a, dst: r.node, id: r.id, uid: r.uid });
    for (const r of externalRuns(result, externals, (e) => result.connId(e, ca), (e) => result.unknownId(e, ca))) raw.push({ src: r.node, dst: a, id: r.id, uid: r.uid });
  }

  const lines = raw
    .map((l): ConnLine => {
      const conns = result.conns.get(l.id);
      let line: ConnLine = { src: l.src, dst: l.dst, conns, conn: formatConns(conns) };
      if (l.uid !== none) {
        const u = result.conns.get(l.uid);
        line = { ...line, unknown: { conns: u, conn: formatConns(u), reasons: unknownReasons(engine, result, l.src, l.dst, u) } };
      }
      return opts.explain ? { ...line, explanation: explainLine(engine, result, line) } : line;
    })
    .filter((l) => !isEmpty(l.conns) || l.unknown !== undefined);
  return lines.sort((a, b) => cmp(lineText(a), lineText(b)));
}

/** The invalid parts behind a line's unknown connections, from both directions of each pair. */
function unknownReasons(engine: PolicyEngine, result: ConnectivityResult, src: ConnNode, dst: ConnNode, unknown: ConnSet): string[] {
  const reasons = new Set<string>();
  for (const s of src.classes) {
    for (const d of dst.classes) {
      const a = result.classes[s].endpoint;
      const b = result.classes[d].endpoint;
      for (const dir of ['egress', 'ingress'] as const) {
        const v = evaluateSideVerdicts(engine, dir, a, b, result.mode, unknown, undefined, true);
        for (const x of v.doubts ?? []) if (!isEmpty(intersect(x.conns, unknown))) reasons.add(x.reason);
      }
    }
  }
  return [...reasons].sort();
}

/** `UNKNOWN TCP 81 (invalid: NetworkPolicy x/p spec.ingress[0].ports[0].endPort)` */
export function unknownText(u: UnknownConns): string {
  return `UNKNOWN ${u.conn} (invalid: ${u.reasons.join('; ')})`;
}

/** The connections part of a line: the certain ones, then any unknown ones. */
export function connText(l: ConnLine): string {
  if (!l.unknown) return l.conn;
  return isEmpty(l.conns) ? unknownText(l.unknown) : `${l.conn}; ${unknownText(l.unknown)}`;
}

export function lineText(l: ConnLine): string {
  return `${l.src.name} => ${l.dst.name} : ${connText(l)}`;
}

// ------------------------------------------------------------------ explanations

function reasonOf(d: Decision, lineConn: string): Reason {
  const conn = formatConns(d.conns);
  const part = conn === lineConn ? '' : ` (${conn})`;
  if (d.rule) {
    const r = d.rule.ref;
    const prio = r.priority !== undefined ? ` (priority ${r.priority})` : '';
    const verb = d.action === 'Pass' ? ' passes to the next tier' : '';
    return {
      tier: r.tier,
      action: d.action === 'Pass' ? 'Pass' : 'Allow',
      policy: r.policy,
      rule: r.rule,
      ...(r.priority !== undefined ? { priority: r.priority } : {}),
      conn,
      text: `${r.policy}${prio} ${r.rule}${verb}${part}`,
    };
  }
  return { tier: 'default', action: 'Allow', conn, text: `default allow (not isolated)${part}` };
}

function explainDirection(
  engine: PolicyEngine,
  result: ConnectivityResult,
  direction: Direction,
  src: Endpoint,
  dst: Endpoint,
  line: ConnLine,
): Reason[] {
  const subject = direction === 'egress' ? src : dst;
  if (subject.kind !== 'pod') {
    return [{ tier: 'default', action: 'Allow', conn: line.conn, text: `outside the cluster: no ${direction} policy applies` }];
  }
  if (subject.pod?.hostNetwork) {
    return [{ tier: 'default', action: 'Allow', conn: line.conn, text: 'host network: no policy selects it' }];
  }
  const trace: Decision[] = [];
  // Only the connections of the line are traced, so every decision recorded is one that allowed them.
  evaluateSide(engine, direction, src, dst, result.mode, line.conns, trace);
  return trace.filter((d) => !isEmpty(d.conns) && d.action !== 'Deny').map((d) => reasonOf(d, line.conn));
}

/** Which rules allow a line, in egress (at the source) and ingress (at the destination). */
export function explainLine(engine: PolicyEngine, result: ConnectivityResult, line: ConnLine): LineExplanation {
  const egress = new Map<string, Reason>();
  const ingress = new Map<string, Reason>();
  // A merged external range spans several atoms; each may be allowed by different rules.
  for (const s of line.src.classes) {
    for (const d of line.dst.classes) {
      const src = result.classes[s].endpoint;
      const dst = result.classes[d].endpoint;
      for (const r of explainDirection(engine, result, 'egress', src, dst, line)) if (!egress.has(r.text)) egress.set(r.text, r);
      for (const r of explainDirection(engine, result, 'ingress', src, dst, line)) if (!ingress.has(r.text)) ingress.set(r.text, r);
    }
  }
  return { egress: [...egress.values()], ingress: [...ingress.values()] };
}
