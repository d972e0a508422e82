// IP addresses and CIDRs as intervals on one number line.
//
// IPv6 addresses occupy [0, 2^128) and IPv4 addresses are placed after them at
// [2^128, 2^128 + 2^32), so that an IPv4 ipBlock never matches IPv6 traffic and vice versa
// (Kubernetes treats the families separately: `0.0.0.0/0` does not select IPv6 peers).

import { isIPv4, isIPv6 } from 'node:net';

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

function v4ToBig(ip: string): bigint {
  const parts = ip.split('.').map((p) => Number(p));
  return BigInt(((parts[0] << 24) >>> 0) + (parts[1] << 16) + (parts[2] << 8) + parts[3]);
}

function v6ToBig(ip: string): bigint {
  let text = ip;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v = Number(v4ToBig(tail));
    text = `${text.slice(0, lastColon + 1)}${(v >>> 16).toString(16)}:${(v & 0xffff).toString(16)}`;
  }
  const [head, rest] = text.split('::');
  const headParts = head ? head.split(':') : [];
  const restParts = rest !== undefined && rest !== '' ? rest.split(':') : [];
  const missing = 8 - headParts.length - restParts.length;
  const all = rest !== undefined ? [...headParts, ...Array<string>(missing).fill('0'), ...restParts] : headParts;
  let value = 0n;
  for (const h of all) value = (value << 16n) + BigInt(parseInt(h, 16));
  return value;
}

/** Parses an address to its position on the number line, or undefined when invalid. */
export function parseIp(ip: string): bigint | undefined {
  if (isIPv4(ip)) return V4_BASE + v4ToBig(ip);
  if (isIPv6(ip)) return v6ToBig(ip);
  return undefined;
}

export function familyOf(value: bigint): Family {
  return value >= V4_BASE ? 4 : 6;
}

/** Parses `a.b.c.d/n` or `x::/n`; returns undefined when the text is not a valid CIDR. */
export function parseCidr(text: string): ParsedCidr | undefined {
  const slash = text.indexOf('/');
  if (slash < 0) return undefined;
  const addr = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  let family: Family;
  let base: bigint;
  let bits: number;
  if (isIPv4(addr)) {
    family = 4;
    bits = 32;
    base = V4_BASE;
  } else if (isIPv6(addr) && !addr.includes('%')) {
    family = 6;
    bits = 128;
    base = 0n;
  } else {
    return undefined;
  }
  if (prefix > bits) return undefined;
  const raw = (parseIp(addr) as bigint) - base;
  const hostBits = BigInt(bits - prefix);
  const size = 1n << hostBits;
  const network = (raw >> hostBits) << hostBits;
  return {
    family,
    text,
    prefix,
    interval: { start: base + network, end: base + network + size - 1n },
    hostBitsSet: network !== raw,
  };
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
  if (value >= V4_BASE) {
    const v = Number(value - V4_BASE);
    return [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
  }
  const hextets: string[] = [];
  for (let i = 7; i >= 0; i--) hextets.push(((value >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero hextets, as RFC 5952 asks.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === '0') j++;
    if (j - i > bestLen && j - i > 1) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestStart < 0) return hextets.join(':');
  const left = hextets.slice(0, bestStart).join(':');
  const right = hextets.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
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
