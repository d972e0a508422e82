// IP addresses and CIDRs as intervals on one number line.
//
// IPv6 addresses occupy [0, 2^128) and IPv4 addresses are placed after them at
// [2^128, 2^128 + 2^32), so that an IPv4 ipBlock never matches IPv6 traffic and vice versa
// (Kubernetes treats the families separately: `0.0.0.0/0` does not select IPv6 peers).

import { formatIP, hasHostBits, parseCIDR, parseIP, type ParseCIDROptions } from '../net/address.js';

export type Family = 4 | 6;

export const V4_BASE = 1n << 128n;
const V4_SIZE = 1n << 32n;
const V6_SIZE = 1n << 128n;

export interface IpInterval {
  readonly start: bigint;
  /** Inclusive. */
  readonly end: bigint;
}

export interface ParsedCidr {
  readonly family: Family;
  readonly text: string;
  readonly prefix: number;
  readonly interval: IpInterval;
  /** True when bits beyond the prefix were set (Kubernetes accepts it and masks them). */
  readonly hostBitsSet: boolean;
}

/** Parses an address to its position on the number line, or undefined when invalid. */
export function parseIp(ip: string): bigint | undefined {
  const parsed = parseIP(ip);
  if (!parsed) return undefined;
  return parsed.family === 4 ? V4_BASE + parsed.value : parsed.value;
}

export function familyOf(value: bigint): Family {
  return value >= V4_BASE ? 4 : 6;
}

/** Parses `a.b.c.d/n` or `x::/n` (src/net/address.ts) onto the line; undefined when the text is not a valid CIDR. */
export function cidrInterval(text: string): ParsedCidr | undefined {
  return cidrOnLine(text, {});
}

/** As cidrInterval, and a bare address is its own /32 or /128 (flow filters, external ranges). */
export function parseCidrOrAddress(text: string): ParsedCidr | undefined {
  return cidrOnLine(text, { bareAddress: true });
}

function cidrOnLine(text: string, opts: ParseCIDROptions): ParsedCidr | undefined {
  const c = parseCIDR(text, opts);
  if (!c) return undefined;
  const base = c.family === 4 ? V4_BASE : 0n;
  const size = 1n << BigInt((c.family === 4 ? 32 : 128) - c.prefix);
  return {
    family: c.family,
    text,
    prefix: c.prefix,
    interval: { start: base + c.network, end: base + c.network + size - 1n },
    hostBitsSet: hasHostBits(c),
  };
}

/** Whether the address `ip` (text) lies in the CIDR. */
export function cidrContains(c: ParsedCidr, ip: string): boolean {
  const v = parseIp(ip);
  return v !== undefined && c.interval.start <= v && v <= c.interval.end;
}

export function familyInterval(family: Family): IpInterval {
  return family === 4
    ? { start: V4_BASE, end: V4_BASE + V4_SIZE - 1n }
    : { start: 0n, end: V6_SIZE - 1n };
}

export function contains(outer: IpInterval, inner: IpInterval): boolean {
  return outer.start <= inner.start && inner.end <= outer.end;
}

export function formatIp(value: bigint): string {
  return value >= V4_BASE ? formatIP(4, value - V4_BASE) : formatIP(6, value);
}

export function formatInterval(iv: IpInterval): string {
  return `${formatIp(iv.start)}-${formatIp(iv.end)}`;
}

/**
 * The set of addresses of an ipBlock: `cidr` minus every `except`, as sorted disjoint
 * intervals. Excepts are clipped to the cidr (an except outside it removes nothing; lint
 * reports it).
 */
export function blockIntervals(cidr: IpInterval, excepts: readonly IpInterval[]): IpInterval[] {
  const cuts = excepts
    .filter((e) => e.end >= cidr.start && e.start <= cidr.end)
    .map((e) => ({ start: e.start < cidr.start ? cidr.start : e.start, end: e.end > cidr.end ? cidr.end : e.end }))
    .sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  const out: IpInterval[] = [];
  let cursor = cidr.start;
  for (const c of cuts) {
    if (c.start > cursor) out.push({ start: cursor, end: c.start - 1n });
    if (c.end + 1n > cursor) cursor = c.end + 1n;
  }
  if (cursor <= cidr.end) out.push({ start: cursor, end: cidr.end });
  return out;
}

export function intervalsContain(intervals: readonly IpInterval[], value: bigint): boolean {
  let lo = 0;
  let hi = intervals.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const iv = intervals[mid];
    if (value < iv.start) hi = mid - 1;
    else if (value > iv.end) lo = mid + 1;
    else return true;
  }
  return false;
}

/**
 * Splits the address families in use into atoms: maximal intervals inside which every
 * given interval either fully contains or fully misses each atom.
 */
export function atomize(families: readonly Family[], pieces: readonly IpInterval[]): IpInterval[] {
  const bounds = new Set<bigint>();
  const universes = families.map(familyInterval);
  for (const u of universes) {
    bounds.add(u.start);
    bounds.add(u.end + 1n);
  }
  for (const p of pieces) {
    bounds.add(p.start);
    bounds.add(p.end + 1n);
  }
  const sorted = [...bounds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const atoms: IpInterval[] = [];
  for (let i = 0; i + 1 < sorted.length; i++) {
    const iv = { start: sorted[i], end: sorted[i + 1] - 1n };
    if (universes.some((u) => contains(u, iv))) atoms.push(iv);
  }
  return atoms;
}
