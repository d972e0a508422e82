// Enrichment: kernel records carry addresses only; the caller's view of the cluster (lab state,
// Kubernetes watch) says which pod owns an address. Anything not a pod is external.
import { cidrContains, parseCidrOrAddress, type ParsedCidr } from '../policy/ip.js';
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
  /** The engine's identity id of the pod, when the caller has an engine. */
  identityId?: number;
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

/** External ranges: CIDRs on the engine's address line (src/policy/ip.ts); a bare address is its own /32 or /128. */
export type Cidr = ParsedCidr;
export { cidrContains };

export interface EnricherOptions {
  lookup: PodLookup;
  /** Named external networks (policy ipBlocks, ANP networks); the most specific match is recorded. */
  externalCidrs?: readonly string[];
  /** Bound on the per-IP cache. */
  cacheSize?: number;
  /** `namespace/name` of the Service at a virtual address and port (flows through Services). */
  serviceLookup?: (ip: string, port: number) => string | undefined;
}

export class Enricher {
  private readonly cidrs: Cidr[];
  private readonly cache = new Map<string, Endpoint>();
  private readonly cacheSize: number;
  constructor(private readonly opts: EnricherOptions) {
    this.cidrs = (opts.externalCidrs ?? [])
      .map((t) => parseCidrOrAddress(t))
      .filter((c): c is Cidr => !!c)
      .sort((a, b) => {
        // The most specific network first: the smallest range.
        const d = a.interval.end - a.interval.start - (b.interval.end - b.interval.start);
        return d < 0n ? -1 : d > 0n ? 1 : 0;
      });
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
        ...(pod.identityId !== undefined ? { identityId: pod.identityId } : {}),
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
    if (r.service && r.service.name === undefined) {
      const name = this.opts.serviceLookup?.(r.service.ip, r.service.port);
      if (name !== undefined) r.service.name = name;
    }
    return r;
  }
}
