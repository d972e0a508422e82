// IPv4 arithmetic for the lab's address plan. IPv4 only: the lab's pod, underlay and
// external ranges are IPv4, like the upstream e2e model. Text goes through the one strict
// parser in src/net.

import { formatIP, hasHostBits, parseCIDR, parseIP } from '../net/address.js';

export interface Cidr {
  /** Network address as an unsigned 32-bit number. */
  readonly base: number;
  readonly bits: number;
}

export function ipv4Number(text: string): number | undefined {
  const parsed = parseIP(text);
  return parsed?.family === 4 ? Number(parsed.value) : undefined;
}

export function formatIPv4(value: number): string {
  return formatIP(4, BigInt(value));
}

/** Parses `a.b.c.d/n` (the one parser, src/net/address.ts); IPv4 only, and the host part must be zero. */
export function labCidr(text: string): Cidr | undefined {
  const c = parseCIDR(text);
  if (!c || c.family !== 4 || hasHostBits(c)) return undefined;
  return { base: Number(c.network), bits: c.prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.base)}/${c.bits}`;
}

export function size(c: Cidr): number {
  return 2 ** (32 - c.bits);
}

export function contains(c: Cidr, ip: number): boolean {
  return ip >= c.base && ip < c.base + size(c);
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  return a.base < b.base + size(b) && b.base < a.base + size(a);
}

/** The `index`-th subnet of length `bits` inside `parent`, or undefined when it does not fit. */
export function subnet(parent: Cidr, bits: number, index: number): Cidr | undefined {
  if (bits < parent.bits || bits > 32) return undefined;
  const count = 2 ** (bits - parent.bits);
  if (index < 0 || index >= count) return undefined;
  return { base: parent.base + index * 2 ** (32 - bits), bits };
}
