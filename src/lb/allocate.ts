// Virtual addresses of Services: ClusterIPs from the service CIDR and NodePorts from the
// node-port range. Pure and deterministic, so every process (each node's agent, the server,
// the analyzer) that sees the same Services computes the same addresses with no allocator
// to talk to.
//
// How: a Service that declares `spec.clusterIP` keeps it (as the API server does); one that
// had an address before (`previous`) keeps it while it is free; every other Service starts
// at sha256("namespace/name") modulo the range and probes linearly to the next free address,
// Services taken in sorted order. So an address depends only on the set of Services, never on
// the order events arrived in. The one way an address can move: a Service added later whose
// hash lands on the same slot *and* sorts first, in a process that does not pass `previous`.
// Declare `spec.clusterIP` (or read it from the API server, which always sets it) to pin it.

import { createHash } from 'node:crypto';
import type { Service } from '../model/cluster.js';
import { objectName, type Diagnostic } from '../model/diagnostics.js';
import { formatIP, parseCIDR, parseIP, type ParsedCIDR } from '../net/address.js';

/** kubeadm's default `--service-cidr`. */
export const DEFAULT_SERVICE_CIDR = '10.96.0.0/12';
/** The API server's default `--service-node-port-range`. */
export const DEFAULT_NODE_PORT_RANGE: readonly [number, number] = [30000, 32767];

export type ServiceAddress =
  | { readonly kind: 'virtual'; readonly ip: string }
  /** `clusterIP: None`: DNS returns the endpoints' addresses, the kernel does nothing. */
  | { readonly kind: 'headless' }
  /** ExternalName: a DNS alias only. */
  | { readonly kind: 'none' };

export interface Allocation {
  /** By `namespace/name`. */
  readonly addresses: ReadonlyMap<string, ServiceAddress>;
  /** By `namespace/name/portIndex`. */
  readonly nodePorts: ReadonlyMap<string, number>;
  readonly diagnostics: readonly Diagnostic[];
}

export interface AllocateOptions {
  readonly serviceCidr?: string;
  readonly nodePortRange?: readonly [number, number];
  /** Addresses this process gave out before, by `namespace/name` (kept while still free). */
  readonly previous?: ReadonlyMap<string, string>;
}

export function serviceKey(s: { readonly namespace: string; readonly name: string }): string {
  return `${s.namespace}/${s.name}`;
}

function hash64(text: string): bigint {
  return createHash('sha256').update(text).digest().readBigUInt64BE(0);
}

function diag(s: Service, code: string, field: string, message: string, severity: Diagnostic['severity'] = 'warning'): Diagnostic {
  return {
    severity,
    code,
    message,
    object: objectName('Service', s.name, s.namespace),
    field,
    ...(s.source ? { file: s.source.file, ...(s.source.line !== undefined ? { line: s.source.line } : {}) } : {}),
  };
}

function inside(cidr: ParsedCIDR, ip: string): bigint | undefined {
  const p = parseIP(ip);
  if (!p || p.family !== cidr.family) return undefined;
  const bits = cidr.family === 4 ? 32 : 128;
  const size = 1n << BigInt(bits - cidr.prefix);
  return p.value >= cidr.network && p.value < cidr.network + size ? p.value : undefined;
}

export function allocate(services: readonly Service[], opts: AllocateOptions = {}): Allocation {
  const cidrText = opts.serviceCidr ?? DEFAULT_SERVICE_CIDR;
  const cidr = parseCIDR(cidrText);
  if (!cidr) throw new Error(`invalid service CIDR "${cidrText}"`);
  const bits = cidr.family === 4 ? 32 : 128;
  const size = 1n << BigInt(bits - cidr.prefix);
  if (size < 8n) throw new Error(`service CIDR ${cidrText} is too small`);
  // The network address and (for IPv4) the broadcast address are never given out; the first
  // host address is kept for `default/kubernetes`, as the API server does.
  const first = cidr.network + 2n;
  const last = cidr.network + size - (cidr.family === 4 ? 2n : 1n);
  const span = last - first + 1n;
  const kubernetesIP = cidr.network + 1n;

  const diagnostics: Diagnostic[] = [];
  const addresses = new Map<string, ServiceAddress>();
  const taken = new Map<bigint, string>();
  const sorted = [...services].sort((a, b) => serviceKey(a).localeCompare(serviceKey(b)));
  const pending: Service[] = [];

  for (const s of sorted) {
    const key = serviceKey(s);
    if (s.type === 'ExternalName') {
      addresses.set(key, { kind: 'none' });
      continue;
    }
    if (s.clusterIP === 'None') {
      addresses.set(key, { kind: 'headless' });
      continue;
    }
    if (s.clusterIP !== undefined && s.clusterIP !== '') {
      const v = inside(cidr, s.clusterIP);
      if (v === undefined) {
        diagnostics.push(diag(s, 'service-ip-outside-cidr', 'spec.clusterIP',
          `clusterIP "${s.clusterIP}" is not an address inside the service CIDR ${cidrText}; an address is allocated instead`));
      } else if (taken.has(v)) {
        diagnostics.push(diag(s, 'service-ip-clash', 'spec.clusterIP',
          `clusterIP ${s.clusterIP} is already used by Service ${taken.get(v)}; an address is allocated instead`));
      } else {
        taken.set(v, key);
        addresses.set(key, { kind: 'virtual', ip: s.clusterIP });
        continue;
      }
    }
    pending.push(s);
  }
  // Previous addresses next, so a Service keeps its address across changes of others.
  const fresh: Service[] = [];
  for (const s of pending) {
    const key = serviceKey(s);
    const prev = opts.previous?.get(key);
    const v = prev !== undefined ? inside(cidr, prev) : undefined;
    if (v !== undefined && !taken.has(v) && (v >= first && v <= last)) {
      taken.set(v, key);
      addresses.set(key, { kind: 'virtual', ip: formatIP(cidr.family, v) });
    } else {
      fresh.push(s);
    }
  }
  for (const s of fresh) {
    const key = serviceKey(s);
    if (key === 'default/kubernetes' && !taken.has(kubernetesIP)) {
      taken.set(kubernetesIP, key);
      addresses.set(key, { kind: 'virtual', ip: formatIP(cidr.family, kubernetesIP) });
      continue;
    }
    const start = hash64(key) % span;
    let found: bigint | undefined;
    for (let i = 0n; i < span; i++) {
      const v = first + ((start + i) % span);
      if (!taken.has(v)) {
        found = v;
        break;
      }
    }
    if (found === undefined) {
      diagnostics.push(diag(s, 'service-cidr-exhausted', 'spec.clusterIP',
        `the service CIDR ${cidrText} has no free address; the Service gets no virtual IP`, 'error'));
      addresses.set(key, { kind: 'none' });
      continue;
    }
    taken.set(found, key);
    addresses.set(key, { kind: 'virtual', ip: formatIP(cidr.family, found) });
  }

  return { addresses, nodePorts: allocateNodePorts(sorted, opts.nodePortRange ?? DEFAULT_NODE_PORT_RANGE, diagnostics), diagnostics };
}

function allocateNodePorts(sorted: readonly Service[], range: readonly [number, number], diagnostics: Diagnostic[]): Map<string, number> {
  const [lo, hi] = range;
  const span = hi - lo + 1;
  const out = new Map<string, number>();
  // Node ports are per protocol in Kubernetes, but one number per Service port keeps the
  // kernel map and the messages simple; a clash is reported either way.
  const taken = new Map<number, string>();
  const wants = sorted.filter((s) => s.type === 'NodePort' || s.type === 'LoadBalancer');
  const fresh: [Service, number][] = [];
  for (const s of wants) {
    s.ports.forEach((p, i) => {
      const where = `${serviceKey(s)} port ${p.port}/${p.protocol}`;
      if (p.nodePort !== undefined) {
        if (p.nodePort < lo || p.nodePort > hi) {
          diagnostics.push(diag(s, 'node-port-out-of-range', `spec.ports[${i}].nodePort`,
            `nodePort ${p.nodePort} is outside the node-port range ${lo}-${hi}; a port is allocated instead`));
        } else if (taken.has(p.nodePort)) {
          diagnostics.push(diag(s, 'node-port-clash', `spec.ports[${i}].nodePort`,
            `nodePort ${p.nodePort} is already used by ${taken.get(p.nodePort)}; a port is allocated instead`));
        } else {
          taken.set(p.nodePort, where);
          out.set(`${serviceKey(s)}/${i}`, p.nodePort);
          return;
        }
      }
      fresh.push([s, i]);
    });
  }
  for (const [s, i] of fresh) {
    const p = s.ports[i];
    const start = Number(hash64(`${serviceKey(s)}/${p.port}/${p.protocol}`) % BigInt(span));
    let found: number | undefined;
    for (let k = 0; k < span; k++) {
      const port = lo + ((start + k) % span);
      if (!taken.has(port)) {
        found = port;
        break;
      }
    }
    if (found === undefined) {
      diagnostics.push(diag(s, 'node-ports-exhausted', `spec.ports[${i}].nodePort`, `no free node port in ${lo}-${hi}`, 'error'));
      continue;
    }
    taken.set(found, `${serviceKey(s)} port ${p.port}/${p.protocol}`);
    out.set(`${serviceKey(s)}/${i}`, found);
  }
  return out;
}
