// Fixtures for the Kubernetes source and the test API server: objects as the API serves them,
// a started server with a kubeconfig in a temporary directory, and a ledger that applies a
// source's events the way a consumer would and refuses any event that does not fit (an add of
// a known object, an update whose `old` is not the current one, a delete of an unknown one):
// that is how "no event lost or applied twice" is checked.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestApiServer, writeKubeconfig, type KubeObject, type TestApiServerOptions } from '../../src/testing/apiserver/index.js';
import type { ClusterEvent, ClusterSnapshot, SourceKind } from '../../src/source/types.js';

export interface ApiFixture {
  readonly server: TestApiServer;
  readonly dir: string;
  readonly kubeconfig: string;
  readonly token: string;
  /** PEM of the server's (self-signed) certificate. */
  readonly ca: string;
  close(): Promise<void>;
}

/** A self-signed certificate for 127.0.0.1 (openssl), as a real API server's serving certificate. */
export function selfSignedCert(dir: string): { key: string; cert: string } {
  const key = join(dir, 'tls.key');
  const cert = join(dir, 'tls.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=weir-test-apiserver', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
}

/** A test API server over HTTPS with a bearer token, and a kubeconfig for it. */
export async function startApiServer(opts: TestApiServerOptions = {}): Promise<ApiFixture> {
  const dir = mkdtempSync(join(tmpdir(), 'weir-kube-'));
  const token = opts.token ?? 'weir-test-token';
  const tls = opts.tls ?? selfSignedCert(dir);
  const server = new TestApiServer({ ...opts, token, tls });
  const url = await server.start(0);
  const kubeconfig = writeKubeconfig(join(dir, 'kubeconfig'), { server: url, token, ca: tls.cert });
  return {
    server,
    dir,
    kubeconfig,
    token,
    ca: tls.cert,
    close: async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function namespace(name: string, labels: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels } };
}

export function node(name: string, ip: string): KubeObject {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { 'kubernetes.io/hostname': name } }, status: { addresses: [{ type: 'InternalIP', address: ip }] } };
}

export interface PodOpts {
  readonly labels?: Record<string, string>;
  readonly node?: string;
  readonly ip?: string;
  readonly ports?: readonly { name?: string; containerPort: number; protocol?: string }[];
  readonly owner?: { kind: string; name: string };
  readonly phase?: string;
}

export function pod(ns: string, name: string, o: PodOpts = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: ns,
      labels: { ...(o.labels ?? {}) },
      ...(o.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: o.owner.kind, name: o.owner.name, uid: `uid-${o.owner.name}`, controller: true }] } : {}),
    },
    spec: { ...(o.node ? { nodeName: o.node } : {}), containers: [{ name: 'main', image: 'registry.example/app:1', ports: o.ports ?? [{ name: 'http', containerPort: 80 }] }] },
    status: { phase: o.phase ?? 'Running', ...(o.ip ? { podIP: o.ip, podIPs: [{ ip: o.ip }] } : {}) },
  };
}

export function networkPolicy(ns: string, name: string, podLabels: Record<string, string>, annotations: Record<string, string> = {}): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace: ns, annotations },
    spec: { podSelector: { matchLabels: podLabels }, policyTypes: ['Ingress'], ingress: [{ from: [{ podSelector: { matchLabels: { role: 'client' } } }], ports: [{ protocol: 'TCP', port: 80 }] }] },
  };
}

export function service(ns: string, name: string, selector: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: ns }, spec: { selector, ports: [{ name: 'http', port: 80, targetPort: 'http', protocol: 'TCP' }], clusterIP: '10.96.0.10', type: 'ClusterIP' } };
}

export function endpointSlice(ns: string, name: string, svc: string, ips: readonly string[]): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: ns, labels: { 'kubernetes.io/service-name': svc } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true }, nodeName: 'node-a', targetRef: { kind: 'Pod', namespace: ns, name: `pod-${ip}` } })),
  };
}

export function adminNetworkPolicy(name: string, priority: number): KubeObject {
  return {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'AdminNetworkPolicy',
    metadata: { name },
    spec: { priority, subject: { namespaces: { matchLabels: { tier: 'app' } } }, ingress: [{ name: 'deny-all', action: 'Deny', from: [{ namespaces: {} }] }] },
  };
}

export function baselineAdminNetworkPolicy(): KubeObject {
  return {
    apiVersion: 'policy.networking.k8s.io/v1alpha1',
    kind: 'BaselineAdminNetworkPolicy',
    metadata: { name: 'default' },
    spec: { subject: { namespaces: {} }, egress: [{ name: 'allow-all', action: 'Allow', to: [{ namespaces: {} }] }] },
  };
}

function keyOfModel(kind: SourceKind, o: { name: string; namespace?: string }): string {
  return `${kind} ${o.namespace !== undefined ? `${o.namespace}/` : ''}${o.name}`;
}

/** A consumer's view built only from events; `problems` lists every event that did not fit. */
export class EventLedger {
  readonly state = new Map<string, unknown>();
  readonly problems: string[] = [];
  readonly batches: ClusterEvent[][] = [];
  readonly log: string[] = [];

  apply(batch: readonly ClusterEvent[]): void {
    this.batches.push([...batch]);
    for (const e of batch) {
      const key = keyOfModel(e.kind, e.object as { name: string; namespace?: string });
      this.log.push(`${e.type} ${key}`);
      const has = this.state.has(key);
      if (e.type === 'added') {
        if (has) this.problems.push(`added twice: ${key}`);
        this.state.set(key, e.object);
      } else if (e.type === 'updated') {
        if (!has) this.problems.push(`updated but unknown: ${key}`);
        else if (JSON.stringify(this.state.get(key)) !== JSON.stringify(e.old)) this.problems.push(`updated with a stale old: ${key}`);
        this.state.set(key, e.object);
      } else {
        if (!has) this.problems.push(`deleted but unknown: ${key}`);
        this.state.delete(key);
      }
    }
  }

  /** The ledger's objects, keyed as `Kind ns/name`, as in a snapshot. */
  keys(): string[] {
    return [...this.state.keys()].sort();
  }
}

/** Every object of a snapshot keyed as the ledger keys them, with the object. */
export function snapshotEntries(s: ClusterSnapshot): Map<string, unknown> {
  const out = new Map<string, unknown>();
  const c = s.cluster;
  for (const o of c.namespaces) out.set(keyOfModel('Namespace', o), o);
  for (const o of c.nodes) out.set(keyOfModel('Node', o), o);
  for (const o of c.pods) out.set(keyOfModel('Pod', o), o);
  for (const o of c.services) out.set(keyOfModel('Service', o), o);
  for (const o of s.endpointSlices) out.set(keyOfModel('EndpointSlice', o), o);
  for (const o of c.networkPolicies) out.set(keyOfModel('NetworkPolicy', o), o);
  for (const o of c.adminNetworkPolicies) out.set(keyOfModel('AdminNetworkPolicy', o), o);
  if (c.baselineAdminNetworkPolicy) out.set(keyOfModel('BaselineAdminNetworkPolicy', c.baselineAdminNetworkPolicy), c.baselineAdminNetworkPolicy);
  return out;
}

/** Polls `check` until it is true (or throws after `ms`, with `what` in the message). */
export async function waitFor(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
