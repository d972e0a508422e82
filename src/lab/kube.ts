// `weir lab up --source kube`: the lab served through the Kubernetes API. The test API server
// (src/testing/apiserver, as its own process with a state file in the lab directory) holds the
// lab's desired state as real API objects — Namespaces, Nodes (addresses, `spec.podCIDRs`),
// Pods (the lab's addresses, `spec.nodeName`, labels, Running and Ready), NetworkPolicies,
// AdminNetworkPolicies, the BaselineAdminNetworkPolicy, Services — and each node's agent is
// `weir agent --kubeconfig` in policy-only mode, watching it instead of the lab's files.
//
//   <dir>/kubeconfig            written by the API server: `kubectl --kubeconfig` reaches it
//   <dir>/apiserver.json        { pid, url, port, startedAt }
//   <dir>/apiserver/state.json  its objects, kept across a restart
//   <dir>/logs/apiserver.log    its output
//
// The desired folder (desired.ts) stays the lab's record of what was applied (`lab probe
// --compare` and `lab status` read it, as before); `lab apply` and `lab delete` write it and then
// bring the API to it (create, update, delete: `converge`), and wait until every agent reports
// the API's resourceVersion after the writes as applied.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { labCluster } from './cluster.js';
import type { Cluster } from '../model/cluster.js';
import { buildDesired, readDesired, type DesiredFiles } from './desired.js';
import { isAlive, stopPid } from './processes.js';
import type { LabNode, LabState } from './state.js';
import { startAgent, type SupervisorOptions } from './supervisor.js';
import { allocate, serviceKey } from '../lb/allocate.js';
import { endpointSlicesOf } from '../source/endpoints.js';
import { MANAGED_BY_LABEL, SERVICE_NAME_LABEL } from '../load/endpointslice.js';
import type { EndpointSlice } from '../source/types.js';

export const APISERVER_INFO = 'apiserver.json';
export const labKubeconfig = (dir: string): string => join(dir, 'kubeconfig');
export const apiStateFile = (dir: string): string => join(dir, 'apiserver', 'state.json');
export const apiLogFile = (dir: string): string => join(dir, 'logs', 'apiserver.log');
const infoFile = (dir: string): string => join(dir, APISERVER_INFO);
/** `{ services }`: whether the kube lab's agents program Service NAT (`lab up --source kube --services`). */
export const KUBE_LAB_FILE = 'kube-lab.json';
const kubeLabFile = (dir: string): string => join(dir, KUBE_LAB_FILE);

/**
 * Does something in this lab implement its Services? A files lab's agents always do; a kube
 * lab's only with `--services` (there is no kube-proxy in the lab).
 */
export async function labProxiesServices(dir: string): Promise<boolean> {
  if (!isKubeLab(dir)) return true;
  const text = await readFile(kubeLabFile(dir), 'utf8').catch(() => undefined);
  if (text === undefined) return false;
  const r = z.object({ services: z.boolean() }).safeParse(JSON.parse(text));
  return r.success && r.data.services;
}
/** main.ts prints this once it listens (APISERVER_LISTENING of src/testing/apiserver/server.ts). */
const LISTENING = 'weir-apiserver listening on ';

const infoSchema = z.object({ pid: z.number().int(), url: z.string(), port: z.number().int(), startedAt: z.string() });
export type LabApiServer = z.infer<typeof infoSchema>;

/** Does this lab serve its state through the API (`lab up --source kube`)? */
export function isKubeLab(dir: string): boolean {
  return existsSync(infoFile(dir));
}

export async function readApiServerInfo(dir: string): Promise<LabApiServer | undefined> {
  const text = await readFile(infoFile(dir), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const r = infoSchema.safeParse(JSON.parse(text));
  return r.success ? r.data : undefined;
}

function apiServerCommand(): string[] {
  for (const rel of ['../testing/apiserver/main.ts', '../testing/apiserver/main.js']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path.endsWith('.ts') ? [process.execPath, '--import', 'tsx', path] : [process.execPath, path];
  }
  throw new Error('cannot find src/testing/apiserver/main.ts to start the lab API server');
}

async function isApiServerOf(pid: number, dir: string): Promise<boolean> {
  const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    .then((t) => t.split('\0'))
    .catch(() => [] as string[]);
  const i = argv.indexOf('--state');
  return i >= 0 && argv[i + 1] === apiStateFile(dir);
}

/**
 * Starts the lab's API server (detached; `fresh`: forget the state of an earlier lab). A
 * restart keeps the port, so kubeconfig and the agents' connections stay valid.
 */
export async function startLabApiServer(dir: string, opts: { fresh?: boolean; timeoutMs?: number } = {}): Promise<LabApiServer> {
  const previous = await readApiServerInfo(dir);
  if (previous && (await isAlive(previous.pid)) && (await isApiServerOf(previous.pid, dir))) throw new Error(`the lab API server is already running (pid ${previous.pid})`);
  if (opts.fresh) await rm(join(dir, 'apiserver'), { recursive: true, force: true });
  await mkdir(join(dir, 'apiserver'), { recursive: true });
  await mkdir(join(dir, 'logs'), { recursive: true });
  const port = opts.fresh ? 0 : (previous?.port ?? 0);
  const [file, ...args] = apiServerCommand();
  const log = await open(apiLogFile(dir), 'a');
  const before = (await readFile(apiLogFile(dir), 'utf8').catch(() => '')).length;
  let exited: string | undefined;
  let pid: number | undefined;
  try {
    // Bookmarks every 500 ms: each kind's resourceVersion keeps up with the server's, which is
    // how `lab apply` knows an agent has seen everything up to its write.
    const child = spawn(file as string, [...args, '--state', apiStateFile(dir), '--kubeconfig', labKubeconfig(dir), '--port', String(port), '--bookmark-ms', '500'], { detached: true, stdio: ['ignore', log.fd, log.fd] });
    pid = child.pid;
    child.on('exit', (code, signal) => (exited = signal ?? `exit code ${code ?? '?'}`));
    child.unref();
  } finally {
    await log.close();
  }
  if (pid === undefined) throw new Error('cannot start the lab API server');
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const text = (await readFile(apiLogFile(dir), 'utf8').catch(() => '')).slice(before);
    const at = text.indexOf(LISTENING);
    if (at >= 0) {
      const url = text.slice(at + LISTENING.length).split('\n')[0].trim();
      const info: LabApiServer = { pid, url, port: Number(new URL(url).port), startedAt: new Date().toISOString() };
      await writeFile(`${infoFile(dir)}.tmp`, `${JSON.stringify(info)}\n`);
      await rename(`${infoFile(dir)}.tmp`, infoFile(dir));
      return info;
    }
    if (exited !== undefined) throw new Error(`the lab API server stopped (${exited}) before listening (log: ${apiLogFile(dir)})`);
    if (Date.now() > deadline) {
      await stopPid(pid, 1000);
      throw new Error(`the lab API server did not listen within ${(opts.timeoutMs ?? 30_000) / 1000} s (log: ${apiLogFile(dir)})`);
    }
    await sleep(50);
  }
}

/** Stops the lab's API server by its recorded PID (it writes its state first). */
export async function stopLabApiServer(dir: string, opts: { forget?: boolean } = {}): Promise<number | undefined> {
  const info = await readApiServerInfo(dir);
  let stopped: number | undefined;
  if (info && (await isAlive(info.pid)) && (await isApiServerOf(info.pid, dir))) {
    await stopPid(info.pid, 3000);
    stopped = info.pid;
  }
  if (opts.forget) await rm(infoFile(dir), { force: true });
  return stopped;
}

/** A fault in the running API server (tests): cut watches, force 410 Gone, silence watches. */
export async function apiServerFault(dir: string, fault: 'drop' | 'gone' | 'silence'): Promise<void> {
  const info = await readApiServerInfo(dir);
  if (!info || !(await isAlive(info.pid)) || !(await isApiServerOf(info.pid, dir))) throw new Error('the lab API server is not running');
  process.kill(info.pid, fault === 'drop' ? 'SIGUSR1' : fault === 'gone' ? 'SIGUSR2' : 'SIGHUP');
}

// ------------------------------------------------------------------ the objects

type Obj = Record<string, unknown> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; [k: string]: unknown } };

interface Managed {
  readonly apiVersion: string;
  readonly kind: string;
  readonly path: string;
  readonly namespaced: boolean;
}

/** The kinds the lab writes, in creation order (namespaces first); deletions go the other way. */
const MANAGED: readonly Managed[] = [
  { apiVersion: 'v1', kind: 'Namespace', path: '/api/v1/namespaces', namespaced: false },
  { apiVersion: 'v1', kind: 'Node', path: '/api/v1/nodes', namespaced: false },
  { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', path: '/apis/networking.k8s.io/v1/networkpolicies', namespaced: true },
  { apiVersion: 'policy.networking.k8s.io/v1alpha1', kind: 'AdminNetworkPolicy', path: '/apis/policy.networking.k8s.io/v1alpha1/adminnetworkpolicies', namespaced: false },
  { apiVersion: 'policy.networking.k8s.io/v1alpha1', kind: 'BaselineAdminNetworkPolicy', path: '/apis/policy.networking.k8s.io/v1alpha1/baselineadminnetworkpolicies', namespaced: false },
  { apiVersion: 'v1', kind: 'Service', path: '/api/v1/services', namespaced: true },
  { apiVersion: 'v1', kind: 'Pod', path: '/api/v1/pods', namespaced: true },
  { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices', namespaced: true },
];

/** A slice of the model as the API object the EndpointSlice controller writes. */
function sliceObject(s: EndpointSlice): Obj {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: s.name, namespace: s.namespace, labels: { [SERVICE_NAME_LABEL]: s.service, ...(s.managedBy !== undefined ? { [MANAGED_BY_LABEL]: s.managedBy } : {}) } },
    addressType: s.addressType,
    ports: s.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), port: p.port, protocol: p.protocol })),
    endpoints: s.endpoints.map((e) => {
      const [ns, name] = e.pod?.split('/') ?? [];
      return {
        addresses: [...e.addresses],
        conditions: { ready: e.ready, serving: e.serving ?? e.ready, terminating: e.terminating ?? false },
        ...(e.nodeName !== undefined ? { nodeName: e.nodeName } : {}),
        ...(ns !== undefined && name !== undefined ? { targetRef: { kind: 'Pod', namespace: ns, name } } : {}),
      };
    }),
  };
}

function objectPath(m: Managed, namespace: string | undefined, name?: string): string {
  const base = m.namespaced && namespace !== undefined ? m.path.replace(/\/([a-z]+)$/, `/namespaces/${encodeURIComponent(namespace)}/$1`) : m.path;
  return name === undefined ? base : `${base}/${encodeURIComponent(name)}`;
}

/**
 * The lab as API objects: policies, Services and EndpointSlices as declared, the rest from the
 * lab's state. The lab plays the parts of a control plane that it has not: the API server's
 * allocators (a Service gets its ClusterIP and NodePorts written into its spec, as weir
 * allocates them from the manifests) and the EndpointSlice controller (a slice per Service
 * with a selector, from the lab's pods, rewritten as they come and go).
 */
export function labApiObjects(desired: DesiredFiles, declared: Cluster, state: Pick<LabState, 'namespaces' | 'nodes' | 'pods'>): Obj[] {
  const out: Obj[] = [];
  const cluster = labCluster(declared, state);
  const allocation = allocate(cluster.services);
  for (const ns of cluster.namespaces) out.push({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns.name, labels: { ...ns.labels, 'kubernetes.io/metadata.name': ns.name } } });
  for (const n of cluster.nodes) {
    const lab = state.nodes.find((x) => x.name === n.name);
    out.push({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: n.name, labels: { ...n.labels } },
      spec: lab ? { podCIDR: lab.podCidr, podCIDRs: [lab.podCidr] } : {},
      status: { addresses: n.ip ? [{ type: 'InternalIP', address: n.ip }, { type: 'Hostname', address: n.name }] : [], conditions: [{ type: 'Ready', status: 'True' }] },
    });
  }
  for (const text of desired.values()) {
    for (const doc of parseAllDocuments(text)) {
      const v = doc.toJS() as Obj | null;
      if (!v || typeof v !== 'object' || !MANAGED.some((m) => m.kind === v.kind && m.apiVersion === v.apiVersion)) continue;
      if (v.kind === 'Namespace' || v.kind === 'Node' || v.kind === 'Pod') continue; // from the state, above and below
      out.push(v.kind === 'Service' ? allocated(v, allocation) : v);
    }
  }
  for (const slice of endpointSlicesOf(cluster)) out.push(sliceObject(slice));
  for (const p of state.pods) {
    const m = /^(.*)\/(.*)\[(\w+)\]$/.exec(p.workload);
    const owner = m && m[3] !== 'Pod' ? [{ apiVersion: 'apps/v1', kind: m[3], name: m[2], uid: `lab-${m[1]}-${m[2]}`, controller: true }] : undefined;
    out.push({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: p.name, namespace: p.namespace, labels: { ...p.labels }, ...(owner ? { ownerReferences: owner } : {}) },
      spec: {
        nodeName: p.node,
        containers: [{ name: 'main', image: 'weir-lab/server', ports: p.ports.map((cp) => ({ ...(cp.name ? { name: cp.name } : {}), containerPort: cp.port, protocol: cp.protocol })) }],
      },
      status: { phase: 'Running', podIP: p.ip, podIPs: [{ ip: p.ip }], conditions: [{ type: 'Ready', status: 'True' }] },
    });
  }
  return out;
}

class ApiClient {
  constructor(private readonly url: string) {}

  async call(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
    const r = await fetch(this.url + path, {
      method,
      headers: { Accept: 'application/json', ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const json = (await r.json().catch(() => ({}))) as Record<string, unknown>;
    return { status: r.status, json };
  }

  async must(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    const r = await this.call(method, path, body);
    if (r.status < 200 || r.status >= 300) throw new Error(`lab API server: ${method} ${path}: ${r.status} ${String(r.json.message ?? '')}`);
    return r.json;
  }
}

/** A Service with the addresses the API server's allocators would give it (declared ones kept). */
function allocated(v: Obj, allocation: ReturnType<typeof allocate>): Obj {
  const key = serviceKey({ namespace: v.metadata.namespace ?? 'default', name: v.metadata.name });
  const address = allocation.addresses.get(key);
  const spec = (v.spec ?? {}) as { clusterIP?: string; ports?: { nodePort?: number }[] };
  return {
    ...v,
    spec: {
      ...spec,
      ...(spec.clusterIP === undefined && address?.kind === 'virtual' ? { clusterIP: address.ip } : {}),
      ...(spec.ports ? { ports: spec.ports.map((p, i) => ({ ...p, ...(p.nodePort === undefined && allocation.nodePorts.has(`${key}/${i}`) ? { nodePort: allocation.nodePorts.get(`${key}/${i}`) } : {}) })) } : {}),
    },
  };
}

const comparable = (o: Record<string, unknown>): string => {
  const meta = (o.metadata ?? {}) as Record<string, unknown>;
  // EndpointSlices keep their content at the top level, not in spec.
  return JSON.stringify({ labels: meta.labels ?? {}, annotations: meta.annotations ?? {}, owners: meta.ownerReferences ?? [], spec: o.spec ?? null, status: o.status ?? null, addressType: o.addressType ?? null, ports: o.ports ?? null, endpoints: o.endpoints ?? null });
};

/**
 * Brings the API server to `objects` (creates, updates, deletes of the managed kinds) and
 * returns its resourceVersion after the last write: every agent that reports it has seen them.
 */
export async function convergeApi(dir: string, objects: readonly Obj[]): Promise<number> {
  const info = await readApiServerInfo(dir);
  if (!info) throw new Error(`no lab API server recorded in ${dir}`);
  const api = new ApiClient(info.url);
  const key = (o: { kind?: unknown; metadata?: { namespace?: unknown; name?: unknown } }): string => `${String(o.kind)}/${String(o.metadata?.namespace ?? '')}/${String(o.metadata?.name)}`;
  const want = new Map(objects.map((o) => [key(o), o]));
  const have = new Map<string, Record<string, unknown> & { metadata: { name: string; namespace?: string; resourceVersion?: string } }>();
  for (const m of MANAGED) {
    const list = await api.must('GET', m.path);
    for (const item of (list.items ?? []) as (Record<string, unknown> & { metadata: { name: string; namespace?: string } })[]) have.set(key({ ...item, kind: m.kind }), item);
  }
  for (const m of MANAGED) {
    for (const o of objects) {
      if (o.kind !== m.kind || o.apiVersion !== m.apiVersion) continue;
      const old = have.get(key(o));
      if (!old) await api.must('POST', objectPath(m, o.metadata.namespace), o);
      else if (comparable(old) !== comparable(o)) await api.must('PUT', objectPath(m, o.metadata.namespace, o.metadata.name), { ...o, metadata: { ...o.metadata, resourceVersion: old.metadata.resourceVersion } });
    }
  }
  for (const m of [...MANAGED].reverse()) {
    for (const [k, old] of have) {
      if (!k.startsWith(`${m.kind}/`) || want.has(k)) continue;
      const r = await api.call('DELETE', objectPath(m, old.metadata.namespace, old.metadata.name));
      if (r.status !== 404 && (r.status < 200 || r.status >= 300)) throw new Error(`lab API server: DELETE ${k}: ${r.status} ${String(r.json.message ?? '')}`);
    }
  }
  const after = await api.must('GET', '/api/v1/namespaces?limit=1');
  return Number((after.metadata as { resourceVersion?: string } | undefined)?.resourceVersion ?? 0);
}

// ------------------------------------------------------------------ the agents

/**
 * labUp hooks for `--source kube`: the first node to be ready seeds the API server with the
 * planned state (every pod's address is known before any pod is attached), then each node's
 * agent starts against it. A healthy watch gets a bookmark every 500 ms, so the agents'
 * watchdog can be short: a watch silent for 5 s is stalled.
 */
export function kubeAgentHooks(dir: string, opts: SupervisorOptions & { readonly agents: boolean; readonly services?: boolean }): { onNodeReady: (node: LabNode, state: LabState) => Promise<void> } {
  let seeded = false;
  return {
    onNodeReady: async (node, state) => {
      if (!seeded) {
        await writeFile(kubeLabFile(dir), `${JSON.stringify({ services: opts.services === true && opts.agents })}\n`);
        const files = await readDesired(dir);
        await convergeApi(dir, labApiObjects(files, buildDesired(dir, files).cluster, state));
        seeded = true;
      }
      // `--services`: the agents replace kube-proxy (the lab has none), `weir agent --services`.
      const agentArgs = [...(opts.agentArgs ?? []), ...(opts.services ? ['--services'] : [])];
      if (opts.agents) await startAgent(dir, node.name, { ...opts, agentArgs, kube: { kubeconfig: labKubeconfig(dir), netns: node.netns, podCidr: node.podCidr, watchdogSeconds: 5 } });
    },
  };
}

/** Brings the API to the lab's desired folder and state; returns the resourceVersion to wait for. */
export async function publishLab(dir: string, state: Pick<LabState, 'namespaces' | 'nodes' | 'pods'>, files?: DesiredFiles): Promise<number> {
  const desired = files ?? (await readDesired(dir));
  return convergeApi(dir, labApiObjects(desired, buildDesired(dir, desired).cluster, state));
}
