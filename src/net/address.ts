// IP address and CIDR text: the one strict parser every part of weir uses (the loader's
// validation of ipBlock.cidr, ipBlock.except and ANP networks; the engine's address line; the
// lab's address plan; the flow enricher).
//
// Addresses are held as bigint so IPv4 and IPv6 share one code path. Only the syntax the
// Kubernetes API accepts is accepted here: dotted-quad IPv4 and RFC 4291 IPv6 text (with an
// optional embedded IPv4 tail), no zones, no brackets.

export type IPFamily = 4 | 6;

export interface ParsedIP {
  readonly family: IPFamily;
  readonly value: bigint;
}

export interface ParsedCIDR {
  readonly family: IPFamily;
  /** The address as written (host bits possibly set). */
  readonly address: bigint;
  readonly prefix: number;
  /** The network address (host bits cleared). */
  readonly network: bigint;
}

const IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/;

export function parseIPv4(text: string): bigint | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // Leading zeros are rejected: some tools read them as octal, others as decimal, and an
    // address that means two different things must not reach a firewall.
    if (!IPV4_OCTET.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

const HEXTET = /^[0-9A-Fa-f]{1,4}$/;

export function parseIPv6(text: string): bigint | undefined {
  if (text.length === 0 || text.includes('%')) return undefined;
  const doubleColon = text.indexOf('::');
  if (doubleColon !== -1 && text.indexOf('::', doubleColon + 1) !== -1) return undefined;

  const parseGroups = (s: string): bigint[] | undefined => {
    if (s === '') return [];
    const groups: bigint[] = [];
    const pieces = s.split(':');
    for (let i = 0; i < pieces.length; i++) {
      const piece = pieces[i];
      if (i === pieces.length - 1 && piece.includes('.')) {
        const v4 = parseIPv4(piece);
        if (v4 === undefined) return undefined;
        groups.push(v4 >> 16n, v4 & 0xffffn);
      } else if (HEXTET.test(piece)) {
        groups.push(BigInt(parseInt(piece, 16)));
      } else {
        return undefined;
      }
    }
    return groups;
  };

  let groups: bigint[];
  if (doubleColon === -1) {
    const all = parseGroups(text);
    if (all === undefined || all.length !== 8) return undefined;
    groups = all;
  } else {
    const head = parseGroups(text.slice(0, doubleColon));
    const tail = parseGroups(text.slice(doubleColon + 2));
    if (head === undefined || tail === undefined) return undefined;
    // `::` stands for at least one zero group.
    if (head.length + tail.length > 7) return undefined;
    groups = [...head, ...new Array<bigint>(8 - head.length - tail.length).fill(0n), ...tail];
  }
  return groups.reduce((acc, g) => (acc << 16n) | g, 0n);
}

export function parseIP(text: string): ParsedIP | undefined {
  if (text.includes(':')) {
    const v = parseIPv6(text);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parseIPv4(text);
  return v === undefined ? undefined : { family: 4, value: v };
}

function bits(family: IPFamily): number {
  return family === 4 ? 32 : 128;
}

function mask(family: IPFamily, prefix: number): bigint {
  const width = BigInt(bits(family));
  const all = (1n << width) - 1n;
  return (all >> BigInt(prefix)) ^ all;
}

export interface ParseCIDROptions {
  /** Accept a bare address as its own full-length prefix (`10.0.0.1` → `10.0.0.1/32`). */
  readonly bareAddress?: boolean;
}

/** Parses `addr/prefix`. The prefix length is mandatory (as in Go's net.ParseCIDR) unless `bareAddress`. */
export function parseCIDR(text: string, opts: ParseCIDROptions = {}): ParsedCIDR | undefined {
  const slash = text.indexOf('/');
  if (slash === -1) {
    if (!opts.bareAddress) return undefined;
    const ip = parseIP(text);
    return ip && { family: ip.family, address: ip.value, prefix: bits(ip.family), network: ip.value };
  }
  const ip = parseIP(text.slice(0, slash));
  const prefixText = text.slice(slash + 1);
  if (ip === undefined || !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (prefix > bits(ip.family)) return undefined;
  return { family: ip.family, address: ip.value, prefix, network: ip.value & mask(ip.family, prefix) };
}

export function hasHostBits(c: ParsedCIDR): boolean {
  return c.address !== c.network;
}

/** True when `inner` lies inside `outer` and is strictly smaller (what `except` requires). */
export function isStrictSubset(inner: ParsedCIDR, outer: ParsedCIDR): boolean {
  if (inner.family !== outer.family || inner.prefix <= outer.prefix) return false;
  return (inner.network & mask(outer.family, outer.prefix)) === outer.network;
}

export function formatIP(family: IPFamily, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const groups: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(((value >> s) & 0xffffn).toString(16));
  // RFC 5952: compress the longest run (of two or more) of zero groups, the first if tied.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** The canonical network form, e.g. `10.0.0.0/24` for `10.0.0.7/24`. */
export function canonicalCIDR(c: ParsedCIDR): string {
  return `${formatIP(c.family, c.network)}/${c.prefix}`;
}
