// `weir diff`: the semantic difference between two versions of a cluster's policies and
// workloads — connections added, removed or changed, workloads that appeared or disappeared —
// in the text format of np-guard's netpol-analyzer diff (`diff-type: …, source: …`).
//
// Both versions are analysed by the same engine code; their lists are compared node by node
// (workloads by name) and, for external addresses, over the common refinement of both
// versions' address atoms, so a changed ipBlock shows exactly the sub-ranges that changed.

import {
  analyze,
  connKey,
  formatConns,
  formatInterval,
  isEmpty,
  type AnalysisClass,
  type ConnectivityResult,
  type PolicyEngine,
} from '../policy/index.js';
import { familyOf, type IpInterval } from '../policy/ip.js';
import { clusterNodes, type ConnNode } from './connlist.js';

export type DiffType = 'changed' | 'added' | 'removed';
export const DIFF_TYPES: readonly DiffType[] = ['changed', 'added', 'removed'];

export interface DiffLine {
  readonly type: DiffType | 'unchanged';
  readonly src: string;
  readonly dst: string;
  /** Connection text in the old and the new version (`No Connections` when none). */
  readonly old: string;
  readonly new: string;
  /** `workload ns/w[Deployment] added`, or empty. */
  readonly workloadsInfo: string;
  /** Namespaces of the ends (undefined for external ranges), for the graph. */
  readonly srcNamespace?: string;
  readonly dstNamespace?: string;
}

export interface ConnectivityDiff {
  /** Changed, added, removed; sorted as np-guard sorts them. */
  readonly lines: readonly DiffLine[];
  /** Unchanged connections (only when asked: the graph draws them grey). */
  readonly unchanged: readonly DiffLine[];
  readonly workloadsAdded: readonly string[];
  readonly workloadsRemoved: readonly string[];
}

const NO_CONNS_TEXT = 'No Connections';

/** One version: its nodes by name and the text of every connection, keyed for comparison. */
interface Version {
  readonly result: ConnectivityResult;
  readonly nodes: Map<string, ConnNode>;
  /** Per conn id pair (certain, unknown): a comparable key and its text. */
  readonly key: (src: number, dst: number) => string;
  readonly text: (src: number, dst: number) => string;
  readonly externals: AnalysisClass[];
}

function version(engine: PolicyEngine): Version {
  const result = analyze(engine);
  const nodes = new Map(clusterNodes(result).map((n) => [n.name, n]));
  const keyCache = new Map<number, string>();
  const setKey = (id: number) => {
    let k = keyCache.get(id);
    if (k === undefined) keyCache.set(id, (k = connKey(result.conns.get(id))));
    return k;
  };
  const none = result.conns.none;
  const key = (s: number, d: number) => {
    const id = result.connId(s, d);
    const uid = result.unknownId(s, d);
    if (id === none && uid === none) return '';
    return uid === none ? setKey(id) : `${setKey(id)}?${setKey(uid)}`;
  };
  const text = (s: number, d: number) => {
    const c = result.conns.get(result.connId(s, d));
    const uid = result.unknownId(s, d);
    if (uid === none) return formatConns(c);
    const u = `UNKNOWN ${formatConns(result.conns.get(uid))}`;
    return isEmpty(c) ? u : `${formatConns(c)}; ${u}`;
  };
  const externals = result.classes
    .filter((c) => c.kind === 'external')
    .sort((a, b) => ((a.range?.start ?? 0n) < (b.range?.start ?? 0n) ? -1 : 1));
  return { result, nodes, key, text, externals };
}

/** The common refinement of two sorted atom lists (both cover the same address families). */
function jointAtoms(a: readonly AnalysisClass[], b: readonly AnalysisClass[]): { range: IpInterval; ai: number; bi: number }[] {
  const out: { range: IpInterval; ai: number; bi: number }[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const ra = a[i].range as IpInterval;
    const rb = b[j].range as IpInterval;
    // Families missing on one side (only IPv4 there): skip what the other does not cover.
    if (ra.end < rb.start) {
      i++;
      continue;
    }
    if (rb.end < ra.start) {
      j++;
      continue;
    }
    const start = ra.start > rb.start ? ra.start : rb.start;
    const end = ra.end < rb.end ? ra.end : rb.end;
    out.push({ range: { start, end }, ai: a[i].index, bi: b[j].index });
    if (ra.end === end) i++;
    if (rb.end === end) j++;
  }
  return out;
}

function diffType(oldKey: string, newKey: string): DiffLine['type'] {
  if (oldKey === newKey) return 'unchanged';
  if (oldKey === '') return 'added';
  if (newKey === '') return 'removed';
  return 'changed';
}

export interface DiffOptions {
  /** Also return unchanged connections (for the graph). */
  readonly unchanged?: boolean;
}

/** The connectivity difference from `oldEngine` to `newEngine`. */
export function diffConnectivity(oldEngine: PolicyEngine, newEngine: PolicyEngine, opts: DiffOptions = {}): ConnectivityDiff {
  const o = version(oldEngine);
  const n = version(newEngine);
  const names = [...new Set([...o.nodes.keys(), ...n.nodes.keys()])].sort();
  const added = new Set(names.filter((x) => !o.nodes.has(x)));
  const removed = new Set(names.filter((x) => !n.nodes.has(x)));
  const lines: DiffLine[] = [];
  const unchanged: DiffLine[] = [];

  const emit = (src: string, dst: string, t: DiffLine['type'], oldText: string, newText: string, srcNs?: string, dstNs?: string) => {
    if (t === 'unchanged' && !opts.unchanged) return;
    // np-guard names the workload ends that appeared (or disappeared) with the change.
    const ends = [src, dst].filter((x) => (t === 'added' && added.has(x)) || (t === 'removed' && removed.has(x)));
    const line: DiffLine = {
      type: t,
      src,
      dst,
      old: oldText,
      new: newText,
      workloadsInfo: ends.length > 0 ? `workload ${ends.join(' and ')} ${t}` : '',
      ...(srcNs !== undefined ? { srcNamespace: srcNs } : {}),
      ...(dstNs !== undefined ? { dstNamespace: dstNs } : {}),
    };
    (t === 'unchanged' ? unchanged : lines).push(line);
  };

  // Workload to workload.
  const on = names.map((x) => o.nodes.get(x)?.classes[0] ?? -1);
  const nn = names.map((x) => n.nodes.get(x)?.classes[0] ?? -1);
  const ns = names.map((x) => (o.nodes.get(x) ?? n.nodes.get(x))?.namespace);
  for (let a = 0; a < names.length; a++) {
    for (let b = 0; b < names.length; b++) {
      if (a === b) continue;
      const ok = on[a] >= 0 && on[b] >= 0 ? o.key(on[a], on[b]) : '';
      const nk = nn[a] >= 0 && nn[b] >= 0 ? n.key(nn[a], nn[b]) : '';
      if (ok === '' && nk === '') continue;
      const t = diffType(ok, nk);
      if (t === 'unchanged' && !opts.unchanged) continue;
      emit(
        names[a],
        names[b],
        t,
        ok === '' ? NO_CONNS_TEXT : o.text(on[a], on[b]),
        nk === '' ? NO_CONNS_TEXT : n.text(nn[a], nn[b]),
        ns[a],
        ns[b],
      );
    }
  }

  // Workload to and from external ranges, over the common refinement of both versions' atoms.
  const atoms = jointAtoms(o.externals, n.externals);
  for (let a = 0; a < names.length; a++) {
    for (const outbound of [true, false]) {
      let run: { start: bigint; end: bigint; ok: string; nk: string; ot: string; nt: string } | undefined;
      const flush = () => {
        if (!run || (run.ok === '' && run.nk === '')) return;
        const t = diffType(run.ok, run.nk);
        const ext = `${formatInterval({ start: run.start, end: run.end })}[External]`;
        if (outbound) emit(names[a], ext, t, run.ot, run.nt, ns[a], undefined);
        else emit(ext, names[a], t, run.ot, run.nt, undefined, ns[a]);
      };
      for (const atom of atoms) {
        const ok = on[a] < 0 ? '' : outbound ? o.key(on[a], atom.ai) : o.key(atom.ai, on[a]);
        const nk = nn[a] < 0 ? '' : outbound ? n.key(nn[a], atom.bi) : n.key(atom.bi, nn[a]);
        const adjacent = run !== undefined && run.end + 1n === atom.range.start && familyOf(run.end) === familyOf(atom.range.start);
        if (run && adjacent && run.ok === ok && run.nk === nk) {
          run.end = atom.range.end;
          continue;
        }
        flush();
        run = {
          start: atom.range.start,
          end: atom.range.end,
          ok,
          nk,
          ot: ok === '' ? NO_CONNS_TEXT : outbound ? o.text(on[a], atom.ai) : o.text(atom.ai, on[a]),
          nt: nk === '' ? NO_CONNS_TEXT : outbound ? n.text(nn[a], atom.bi) : n.text(atom.bi, nn[a]),
        };
      }
      flush();
    }
  }

  const order = (t: DiffLine['type']) => (t === 'changed' ? 0 : t === 'added' ? 1 : t === 'removed' ? 2 : 3);
  const sortKey = (l: DiffLine) => diffLineText(l);
  lines.sort((x, y) => order(x.type) - order(y.type) || (sortKey(x) < sortKey(y) ? -1 : sortKey(x) > sortKey(y) ? 1 : 0));
  return { lines, unchanged, workloadsAdded: [...added], workloadsRemoved: [...removed] };
}

/** np-guard's text line: `diff-type: added, source: S, destination: D, old: C, new: C[, workloads-diff-info: …]`. */
export function diffLineText(l: DiffLine): string {
  const line = `diff-type: ${l.type}, source: ${l.src}, destination: ${l.dst}, old: ${l.old}, new: ${l.new}`;
  return l.workloadsInfo ? `${line}, workloads-diff-info: ${l.workloadsInfo}` : line;
}
