// Every lab object is named after the instance prefix (default `weir-`), so a test lab
// (`weir-t1a2b-`) and a user's lab never collide, and `lab down --force` can find exactly
// what weir created and nothing else.
//
// Only network namespaces carry the prefix: every link lives inside a lab namespace (the
// root namespace is never touched), so link names only have to be unique per namespace and
// fit IFNAMSIZ (15 characters).

import { createHash } from 'node:crypto';

export const DEFAULT_PREFIX = 'weir-';
export const DEFAULT_LAB_DIR = '/run/weir/lab';

/** Calico's trick: every host-side pod veth has this MAC, so pods can pin their gateway's neighbour entry. */
export const HOST_VETH_MAC = 'ee:ee:ee:ee:ee:ee';
/** Link-local gateway every pod routes through (onlink), answered by the node. */
export const POD_GATEWAY = '169.254.1.1';

export const UNDERLAY_DEV = 'eth0';
export const VXLAN_DEV = 'vxlan0';
export const UNDERLAY_BRIDGE = 'br0';
export const POD_DEV = 'eth0';
export const EXTERNAL_HOST_VETH = 'wext';

const PREFIX_RE = /^[a-z][a-z0-9-]{0,14}-$/;

export function isValidPrefix(prefix: string): boolean {
  return PREFIX_RE.test(prefix);
}

/** The default lab directory of an instance: `/run/weir/lab` for `weir-`, `/run/weir/lab-<id>` otherwise. */
export function defaultLabDir(prefix: string): string {
  if (process.env.WEIR_LAB_DIR) return process.env.WEIR_LAB_DIR;
  if (prefix === DEFAULT_PREFIX) return DEFAULT_LAB_DIR;
  return `${DEFAULT_LAB_DIR}-${prefix.replace(/-$/, '')}`;
}

export function podKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** Short stable hash of a pod key; 8 hex digits keep `wp<hash>` at 10 characters. */
export function podHash(key: string): string {
  return createHash('sha256').update(key).digest('hex').slice(0, 8);
}

export const netnsNames = {
  underlay: (prefix: string): string => `${prefix}ul`,
  node: (prefix: string, index: number): string => `${prefix}n${index}`,
  external: (prefix: string): string => `${prefix}ext`,
  pod: (prefix: string, key: string): string => `${prefix}p-${podHash(key)}`,
};

/**
 * Is this network namespace one of the instance's own? Only the exact role names count, so
 * the default instance (`weir-`) never claims a test instance's `weir-t1a2b-n0`.
 */
export function isInstanceNetns(prefix: string, name: string): boolean {
  if (!name.startsWith(prefix)) return false;
  return /^(ul|ext|n\d+|p-[0-9a-f]{8})$/.test(name.slice(prefix.length));
}

const HOST_VETH_PREFIX = 'wp';
/** nft interface wildcard matching every pod's host-side veth (and nothing else on a node). */
export const HOST_VETH_PATTERN = `${HOST_VETH_PREFIX}*`;

/** Host-side (node namespace) end of a pod's veth. */
export function hostVethName(key: string): string {
  return `${HOST_VETH_PREFIX}${podHash(key)}`;
}

/** Underlay bridge port of node `index` (inside the underlay namespace). */
export function underlayPortName(index: number): string {
  return `n${index}`;
}

/** Deterministic VTEP MAC per node, so FDB and neighbour entries can be written up front. */
export function vtepMac(index: number): string {
  const hi = Math.floor(index / 256) % 256;
  const lo = index % 256;
  return `02:77:65:69:${hi.toString(16).padStart(2, '0')}:${lo.toString(16).padStart(2, '0')}`;
}
