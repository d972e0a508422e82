// Enrichment: kernel records carry addresses only; the caller's view of the cluster (lab state,
// Kubernetes watch) says which pod owns an address. Anything not a pod is external.
import type { Endpoint, FlowRecord } from './record.js';

export interface PodInfo {
  ip: string;
  namespace: string;
  name: string;
  /** Owning workload key, `namespace/name[Kind]` (the model's workloadKey). */
  workload?: string;
  labels?: Readonly<Record<string, string>>;
  /** Precomputed identity; derived from namespace + labels when absent. */
  identity?: string;
}

export type PodLookup = (ip: string) => PodInfo | undefined;

/**
 * Endpoints with the same labels in the same namespace share one identity (Cilium's model), so
 * the identity is a canonical rendering of namespace + sorted labels.
 */
export function identityOf(namespace: string, labels: Readonly<Record<string, string>> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`);
  return `${namespace}:${parts.join(',')}`;
}

interface Cidr {
  text: string;
  v6: boolean;
  base: bigint;
  mask: bigint;
}

export function parseIp(ip: string): { v6: boolean; value: bigint } | undefined {
  if (ip.includes(':')) {
    const [head, tail = ''] = ip.split('::') as [string, string?];
    if (ip.split('::').length > 2) return undefined;
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const fill = ip.includes('::') ? 8 - h.length - t.length : 0;
    const groups = [...h, ...Array<string>(fill).fill('0'), ...t];
    if (groups.length !== 8 || !groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
    let v = 0n;
    for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
    return { v6: true, value: v };
  }
  const p = ip.split('.');
  if (p.length !== 4 || !p.every((x) => /^\d{1,3}$/.test(x) && Number(x) <= 255)) return undefined;
  return { v6: false, value: p.reduce((a, x) => (a << 8n) | BigInt(Number(x)), 0n) };
}

export function parseCidr(text: string): Cidr | undefined {
  const [ip, lenText] = text.split('/');
  if (!ip) return undefined;
  const a = parseIp(ip);
  if (!a) return undefined;
  const bits = a.v6 ? 128 : 32;
  const len = lenText === undefined ? bits : Number(lenText);
  if (!Number.isInteger(len) || len < 0 || len > bits) return undefined;
  const all = (1n << BigInt(bits)) - 1n;
  const mask = len === 0 ? 0n : (all << BigInt(bits - len)) & all;
  return { text, v6: a.v6, base: a.value & mask, mask };
}

export function cidrContains(c: Cidr, ip: string): boolean {
  const a = parseIp(ip);
  return !!a && a.v6 === c.v6 && (a.value & c.mask) === c.base;
}

export interface EnricherOptions {
  lookup: PodLookup;
  /** Named external networks (policy ipBlocks, ANP networks); the most specific match is recorded. */
  externalCidrs?: readonly string[];
  /** Bound on the per-IP cache. */
  cacheSize?: number;
}

export class Enricher {
  private readonly cidrs: Cidr[];
  private readonly cache = new Map<string, Endpoint>();
  private readonly cacheSize: number;
  constructor(private readonly opts: EnricherOptions) {
    this.cidrs = (opts.externalCidrs ?? [])
      .map(parseCidr)
      .filter((c): c is Cidr => !!c)
      .sort((a, b) => (b.mask > a.mask ? 1 : b.mask < a.mask ? -1 : 0));
    this.cacheSize = opts.cacheSize ?? 50_000;
  }

  /** Forget cached answers (call when the pod set changes). */
  invalidate(): void {
    this.cache.clear();
  }

  endpoint(ip: string): Endpoint {
    const hit = this.cache.get(ip);
    if (hit) return hit;
    const pod = this.opts.lookup(ip);
    let ep: Endpoint;
    if (pod) {
      ep = {
        ip,
        namespace: pod.namespace,
        pod: pod.name,
        workload: pod.workload ?? `${pod.namespace}/${pod.name}[Pod]`,
        identity: pod.identity ?? identityOf(pod.namespace, pod.labels),
      };
    } else {
      const cidr = this.cidrs.find((c) => cidrContains(c, ip));
      ep = cidr ? { ip, external: true, cidr: cidr.text } : { ip, external: true };
    }
    if (this.cache.size >= this.cacheSize) this.cache.clear();
    this.cache.set(ip, ep);
    return ep;
  }

  /** Replaces the endpoints in place (records are freshly parsed and not shared yet) and returns the record. */
  enrich(r: FlowRecord): FlowRecord {
    r.src = this.endpoint(r.src.ip);
    r.dst = this.endpoint(r.dst.ip);
    return r;
  }
}
