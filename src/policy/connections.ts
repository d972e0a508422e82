// Sets of connections: for each port protocol a set of port ranges, plus "other protocols"
// (ICMP and everything without ports). A NetworkPolicy rule with ports only ever allows
// TCP/UDP/SCTP; a rule without ports allows every protocol, which is why `other` exists.

import { PROTOCOLS, type Protocol } from '../model/cluster.js';

export const MIN_PORT = 1;
export const MAX_PORT = 65535;

/** Sorted, disjoint, non-adjacent inclusive ranges, flattened as [s0, e0, s1, e1, ...]. */
export type PortRanges = readonly number[];

export interface ConnSet {
  readonly TCP: PortRanges;
  readonly UDP: PortRanges;
  readonly SCTP: PortRanges;
  readonly other: boolean;
}

const FULL: PortRanges = [MIN_PORT, MAX_PORT];

export const ALL_CONNS: ConnSet = { TCP: FULL, UDP: FULL, SCTP: FULL, other: true };
export const NO_CONNS: ConnSet = { TCP: [], UDP: [], SCTP: [], other: false };

function normalize(ranges: number[]): number[] {
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i], ranges[i + 1]]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [s, e] of pairs) {
    const n = out.length;
    if (n > 0 && s <= out[n - 1] + 1) {
      if (e > out[n - 1]) out[n - 1] = e;
    } else {
      out.push(s, e);
    }
  }
  return out;
}

function unionRanges(a: PortRanges, b: PortRanges): PortRanges {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  return normalize([...a, ...b]);
}

function intersectRanges(a: PortRanges, b: PortRanges): PortRanges {
  const out: number[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const s = Math.max(a[i], b[j]);
    const e = Math.min(a[i + 1], b[j + 1]);
    if (s <= e) out.push(s, e);
    if (a[i + 1] < b[j + 1]) i += 2;
    else j += 2;
  }
  return out;
}

function subtractRanges(a: PortRanges, b: PortRanges): PortRanges {
  if (b.length === 0 || a.length === 0) return a;
  const out: number[] = [];
  for (let i = 0; i < a.length; i += 2) {
    let s = a[i];
    const e = a[i + 1];
    for (let j = 0; j < b.length && s <= e; j += 2) {
      if (b[j + 1] < s || b[j] > e) continue;
      if (b[j] > s) out.push(s, b[j] - 1);
      s = b[j + 1] + 1;
    }
    if (s <= e) out.push(s, e);
  }
  return out;
}

export function portsConn(protocol: Protocol, start: number, end: number): ConnSet {
  return { ...NO_CONNS, [protocol]: [start, end] };
}

export function protocolConn(protocol: Protocol): ConnSet {
  return { ...NO_CONNS, [protocol]: FULL };
}

export function union(a: ConnSet, b: ConnSet): ConnSet {
  return {
    TCP: unionRanges(a.TCP, b.TCP),
    UDP: unionRanges(a.UDP, b.UDP),
    SCTP: unionRanges(a.SCTP, b.SCTP),
    other: a.other || b.other,
  };
}

export function intersect(a: ConnSet, b: ConnSet): ConnSet {
  return {
    TCP: intersectRanges(a.TCP, b.TCP),
    UDP: intersectRanges(a.UDP, b.UDP),
    SCTP: intersectRanges(a.SCTP, b.SCTP),
    other: a.other && b.other,
  };
}

export function subtract(a: ConnSet, b: ConnSet): ConnSet {
  return {
    TCP: subtractRanges(a.TCP, b.TCP),
    UDP: subtractRanges(a.UDP, b.UDP),
    SCTP: subtractRanges(a.SCTP, b.SCTP),
    other: a.other && !b.other,
  };
}

export function isEmpty(c: ConnSet): boolean {
  return !c.other && c.TCP.length === 0 && c.UDP.length === 0 && c.SCTP.length === 0;
}

export function isAll(c: ConnSet): boolean {
  return c.other && PROTOCOLS.every((p) => c[p].length === 2 && c[p][0] === MIN_PORT && c[p][1] === MAX_PORT);
}

export function allows(c: ConnSet, protocol: Protocol, port: number): boolean {
  const r = c[protocol];
  for (let i = 0; i < r.length; i += 2) if (port >= r[i] && port <= r[i + 1]) return true;
  return false;
}

function rangesText(r: PortRanges): string {
  const parts: string[] = [];
  for (let i = 0; i < r.length; i += 2) parts.push(r[i] === r[i + 1] ? `${r[i]}` : `${r[i]}-${r[i + 1]}`);
  return parts.join(',');
}

/**
 * The connection text of np-guard's netpol-analyzer: `All Connections`, `No Connections`,
 * or protocols in alphabetical order, e.g. `TCP 80,8080-8090,UDP 53`.
 */
export function formatConns(c: ConnSet): string {
  if (isAll(c)) return 'All Connections';
  if (isEmpty(c)) return 'No Connections';
  const parts: string[] = [];
  for (const p of ['SCTP', 'TCP', 'UDP'] as const) if (c[p].length > 0) parts.push(`${p} ${rangesText(c[p])}`);
  if (c.other) parts.push('other protocols');
  return parts.join(',');
}

export function connKey(c: ConnSet): string {
  return `${c.TCP.join(',')}|${c.UDP.join(',')}|${c.SCTP.join(',')}|${c.other ? 1 : 0}`;
}

/**
 * Interns connection sets to small integers so that matrices of verdicts are typed arrays
 * and set algebra on repeated pairs is computed once.
 */
export class ConnTable {
  private readonly byKey = new Map<string, number>();
  readonly sets: ConnSet[] = [];
  private readonly interMemo = new Map<number, number>();
  readonly none: number;
  readonly all: number;

  constructor() {
    this.none = this.intern(NO_CONNS);
    this.all = this.intern(ALL_CONNS);
  }

  intern(c: ConnSet): number {
    const key = connKey(c);
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = this.sets.length;
      this.sets.push(c);
      this.byKey.set(key, id);
    }
    return id;
  }

  get(id: number): ConnSet {
    return this.sets[id];
  }

  intersect(a: number, b: number): number {
    if (a === b || b === this.all) return a;
    if (a === this.all) return b;
    if (a === this.none || b === this.none) return this.none;
    // Ids stay far below 2^26, so the packed key is exact (< 2^52) and never collides.
    const key = a < b ? a * 0x4000000 + b : b * 0x4000000 + a;
    let r = this.interMemo.get(key);
    if (r === undefined) {
      r = this.intern(intersect(this.sets[a], this.sets[b]));
      this.interMemo.set(key, r);
    }
    return r;
  }
}
