// Services in the analyzer: `weir explain --to svc/ns/name --port 80` and `weir analyze
// --services`. As in Kubernetes, policy applies after translation: a connection to a Service
// is judged as the connection to the endpoint it is sent to — the real pod and target port —
// in both directions (the node translates before the forward hook, so the client's egress
// rules see the pod, not the ClusterIP). A Service port is therefore reachable through the
// endpoints whose pod-to-pod verdict allows the target port, and *partly* reachable when some
// endpoints allow and others deny: each new connection goes to one endpoint, so some
// connections get through and some do not.
//
// Endpoints as the analyzer knows them: the pods the selector matches (with or without an
// address — manifests rarely carry one), each with the container port its targetPort names
// (a pod where a named targetPort resolves nowhere is no endpoint of that port, as in the
// EndpointSlice controller), plus the endpoints of the EndpointSlices the manifests declare
// for it (src/analyze/service-slices.ts: a pod's address is that pod, another address is an
// external endpoint). What the manifests cannot say is never guessed: a Service without
// selector that no EndpointSlice names, an invalid slice, an ExternalName, or a Local traffic
// policy whose client node is not known makes every verdict through it UNKNOWN, never allowed.
//
// NodePorts, per node entered (as src/render/services.ts translates them, after kube-proxy):
// with externalTrafficPolicy Cluster the connection is masqueraded to the address of the node
// the client entered, so every endpoint's ingress policy judges *that node's address*, whichever
// node the endpoint runs on, and the client's own address matters nowhere (it is outside the
// cluster: no egress policy of its own). Without a Node address in the manifests the verdict is
// what every address would get, else UNKNOWN. With externalTrafficPolicy Local the client's
// address is kept and only the entered node's endpoints are used (none there: dropped).
//
// Pure: engine, cluster and analysis in, plain data out.

import { allocate, serviceKey, type ServiceAddress } from '../lb/allocate.js';
import { resolveTargetPort } from '../lb/endpoints.js';
import type { Cluster, Node, Pod, Protocol, Service } from '../model/cluster.js';
import {
  allows,
  explain,
  EndpointNotFoundError,
  formatExplanation,
  formatInterval,
  resolveEndpoint,
  type AnalysisClass,
  type ConnectivityResult,
  type Explanation,
  type PolicyEngine,
  type Verdict,
} from '../policy/index.js';
import { familyOf, formatIp, parseIp } from '../policy/ip.js';
import { SERVICE_NAME_LABEL } from '../load/endpointslice.js';
import { slicesByService, slicesOfService } from '../lb/slices.js';
import { parseIP } from '../net/address.js';
import { podIndex, sliceEndpointRefs } from './service-slices.js';
import { clusterNodes, type ConnNode } from './connlist.js';
import { escapeControl, escapeJson } from './escape.js';

/** How a client reaches a Service port. */
export type ServiceFrontend = 'cluster-ip' | 'node-port' | 'headless';

export interface ServiceEndpointRef {
  /** `ns/name` of the pod; absent for an EndpointSlice address outside every known pod. */
  readonly pod?: string;
  /** The endpoint's address, for EndpointSlice endpoints. */
  readonly ip?: string;
  /** The pod's workload, `ns/name[Kind]`, or `IP[External]`. */
  readonly workload: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly node?: string;
}

export interface ServicePortView {
  /** `ns/name`. */
  readonly service: string;
  readonly namespace: string;
  readonly name: string;
  readonly index: number;
  readonly portName?: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly targetPort: number | string;
  readonly nodePort?: number;
  readonly address: ServiceAddress;
  readonly internalTrafficPolicy: 'Cluster' | 'Local';
  readonly externalTrafficPolicy: 'Cluster' | 'Local';
  /** Sorted by pod. */
  readonly endpoints: readonly ServiceEndpointRef[];
  /** Set when the manifests cannot say which endpoints there are: every verdict is Unknown. */
  readonly unresolved?: string;
  /** Why there is no endpoint, when the EndpointSlices say so. */
  readonly emptyReason?: string;
}

/** What explain() takes for an endpoint: the pod, or the external address. */
export function endpointTarget(e: ServiceEndpointRef): string {
  return e.pod ?? e.ip ?? '';
}

/** An endpoint in words: the pod and its workload, or an external address. */
function endpointWords(e: ServiceEndpointRef): string {
  return e.pod !== undefined ? `${e.pod} (${e.workload})` : `${e.ip ?? '?'} (External)`;
}

function selects(selector: Readonly<Record<string, string>>, pod: Pod): boolean {
  return Object.entries(selector).every(([k, v]) => pod.labels[k] === v);
}

/** Every Service port of the cluster with its endpoints as the manifests define them. */
export function servicePorts(cluster: Pick<Cluster, 'services' | 'pods' | 'endpointSlices'>): ServicePortView[] {
  const alloc = allocate(cluster.services);
  const out: ServicePortView[] = [];
  const slices = slicesByService(cluster.endpointSlices ?? []);
  const pods = podIndex(cluster.pods);
  for (const s of cluster.services) {
    const key = serviceKey(s);
    const address = alloc.addresses.get(key) ?? { kind: 'none' as const };
    const own = slicesOfService(s, slices.get(key) ?? []);
    const family = address.kind === 'virtual' ? parseIP(address.ip)?.family : undefined;
    const unresolved = unresolvedReason(s, own.length);
    const selected = s.selector !== undefined ? cluster.pods.filter((p) => p.namespace === s.namespace && !p.hostNetwork && selects(s.selector ?? {}, p)) : [];
    s.ports.forEach((sp, index) => {
      const endpoints: ServiceEndpointRef[] = [];
      for (const pod of selected) {
        const port = resolveTargetPort(pod, sp.targetPort, sp.protocol);
        if (port === undefined) continue;
        endpoints.push({ pod: `${pod.namespace}/${pod.name}`, workload: pod.workload, port, protocol: sp.protocol, ...(pod.node !== undefined ? { node: pod.node } : {}) });
      }
      const fromSlices = unresolved === undefined && own.length > 0 ? sliceEndpointRefs(s, index, own, pods, family) : undefined;
      const portUnresolved = unresolved ?? fromSlices?.unresolved;
      for (const e of fromSlices?.endpoints ?? []) {
        // A slice may list a pod the selector already gives (kube-proxy keeps one per address and port).
        if (!endpoints.some((x) => endpointTarget(x) === endpointTarget(e) && x.port === e.port)) endpoints.push(e);
      }
      endpoints.sort((a, b) => (endpointTarget(a) < endpointTarget(b) ? -1 : endpointTarget(a) > endpointTarget(b) ? 1 : 0));
      const nodePort = alloc.nodePorts.get(`${key}/${index}`);
      out.push({
        service: key,
        namespace: s.namespace,
        name: s.name,
        index,
        ...(sp.name !== undefined ? { portName: sp.name } : {}),
        port: sp.port,
        protocol: sp.protocol,
        targetPort: sp.targetPort,
        ...(nodePort !== undefined ? { nodePort } : {}),
        address,
        internalTrafficPolicy: s.internalTrafficPolicy,
        externalTrafficPolicy: s.externalTrafficPolicy ?? 'Cluster',
        endpoints: portUnresolved !== undefined ? [] : endpoints,
        ...(portUnresolved !== undefined ? { unresolved: portUnresolved } : {}),
        ...(fromSlices?.emptyReason !== undefined && endpoints.length === 0 ? { emptyReason: fromSlices.emptyReason } : {}),
      });
    });
  }
  return out;
}

function unresolvedReason(s: Service, slices: number): string | undefined {
  const name = `Service ${s.namespace}/${s.name}`;
  if (s.type === 'ExternalName') return `${name} spec.type: ExternalName is a DNS alias with no endpoints in the cluster`;
  if (s.selector === undefined && slices === 0) {
    return `${name} spec.selector: absent, and no EndpointSlice in the input names it (label ${SERVICE_NAME_LABEL}: ${s.name}), so its endpoints are managed outside the manifests`;
  }
  return undefined;
}

export class ServiceNotFoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServiceNotFoundError';
  }
}

/** `svc/ns/name` (also `service/ns/name`): the Service key, or undefined for another spec. */
export function serviceSpec(spec: string): string | undefined {
  const m = /^(?:svc|service)\/([^/]+)\/([^/]+)$/.exec(spec);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/**
 * The Service port `port` names: its number or its name (`http`), with the protocol when
 * given. Throws ServiceNotFoundError naming what exists.
 */
export function findServicePort(views: readonly ServicePortView[], service: string, port: number | string, protocol?: Protocol): ServicePortView {
  const ports = views.filter((v) => v.service === service);
  if (ports.length === 0) {
    const ns = service.split('/')[0];
    const inNs = [...new Set(views.filter((v) => v.namespace === ns).map((v) => v.name))];
    throw new ServiceNotFoundError(`no Service ${service}${inNs.length > 0 ? `: Services in ${ns}: ${inNs.slice(0, 8).join(', ')}` : ''}`);
  }
  const hit = ports.find((v) => (typeof port === 'number' ? v.port === port : v.portName === port) && (protocol === undefined || v.protocol === protocol));
  if (!hit) {
    const known = ports.map((v) => `${v.port}/${v.protocol}${v.portName !== undefined ? ` (${v.portName})` : ''}`).join(', ');
    throw new ServiceNotFoundError(`Service ${service} has no port ${port}${protocol ? `/${protocol}` : ''}: its ports are ${known}`);
  }
  return hit;
}

/** Which frontend a client uses: pods the ClusterIP, external clients a NodePort when there is one. */
export function frontendFor(view: ServicePortView, external: boolean): ServiceFrontend {
  if (view.address.kind === 'headless') return 'headless';
  return external && view.nodePort !== undefined ? 'node-port' : 'cluster-ip';
}

export function frontendText(view: ServicePortView, frontend: ServiceFrontend, entry?: NodePortEntry): string {
  if (frontend === 'headless') return 'headless: straight to the endpoints';
  if (frontend === 'node-port') {
    const np = `NodePort ${view.nodePort ?? '?'}`;
    if (!entry) return `${np} on every node${view.externalTrafficPolicy === 'Local' ? ', externalTrafficPolicy Local' : ', masqueraded'}`;
    return `${np} on ${entry.node ?? 'any node'}, ${nodePortSeenText(entry)}`;
  }
  return view.address.kind === 'virtual' ? `ClusterIP ${view.address.ip}` : 'no ClusterIP';
}

/** How a NodePort entry treats the client's address, in words. */
function nodePortSeenText(entry: NodePortEntry): string {
  if (entry.masquerade) return `masqueraded: the endpoints' policy sees ${entry.nodeIp ?? "the node's address"}`;
  return entry.node !== undefined ? `externalTrafficPolicy Local: client address kept, endpoints on ${entry.node} only` : 'externalTrafficPolicy Local: each endpoint through its own node, client address kept';
}

/** One node's NodePort: the endpoints a client entering there may be sent to, and the source they see. */
export interface NodePortEntry {
  /** The node entered; absent when the manifests name no node (any node). */
  readonly node?: string;
  readonly nodeIp?: string;
  /** externalTrafficPolicy Cluster: masqueraded to the node's address (what the endpoints' policy sees). */
  readonly masquerade: boolean;
  readonly endpoints: readonly ServiceEndpointRef[];
  /** externalTrafficPolicy Local and no endpoint on this node while there are some elsewhere: dropped. */
  readonly dropped?: boolean;
  readonly unresolved?: string;
}

/** A NodePort per node entered (sorted by node name), or one entry for any node when none is known. */
export function nodePortEntries(view: ServicePortView, nodes: readonly Node[]): NodePortEntry[] {
  const masquerade = view.externalTrafficPolicy === 'Cluster';
  const sorted = [...nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const base = (n: Node | undefined) => ({ ...(n ? { node: n.name } : {}), ...(n?.ip !== undefined ? { nodeIp: n.ip } : {}), masquerade });
  if (view.unresolved !== undefined) return (sorted.length > 0 ? sorted : [undefined]).map((n) => ({ ...base(n), endpoints: [], unresolved: view.unresolved }));
  if (sorted.length === 0) return [{ ...base(undefined), endpoints: view.endpoints }];
  return sorted.map((n) => {
    if (masquerade) return { ...base(n), endpoints: view.endpoints };
    if (view.endpoints.some((e) => e.node === undefined)) return { ...base(n), endpoints: [], unresolved: `Service ${view.service} spec.externalTrafficPolicy: Local, and the endpoints' nodes are not known` };
    const endpoints = view.endpoints.filter((e) => e.node === n.name);
    return { ...base(n), endpoints, ...(endpoints.length === 0 && view.endpoints.length > 0 ? { dropped: true } : {}) };
  });
}

/** The source an endpoint's ingress policy judges through `entry` (for explain): the node's address, or the client. */
function seenFrom(entry: NodePortEntry, client: string): string {
  return entry.masquerade ? (entry.nodeIp ?? '0.0.0.0/0') : client;
}

const NODE_ADDRESS_UNKNOWN = "the endpoints' policy sees the address of the node entered (masquerade), which the manifests do not give (no Node with an address)";

/**
 * The endpoints a client on `clientNode` may be sent to through `frontend`, or why that cannot
 * be known. internalTrafficPolicy Local: only the endpoints on the client's own node.
 */
export function eligibleEndpoints(
  view: ServicePortView,
  frontend: ServiceFrontend,
  clientNode: string | undefined,
): { readonly endpoints: readonly ServiceEndpointRef[]; readonly unresolved?: string } {
  if (view.unresolved !== undefined) return { endpoints: [], unresolved: view.unresolved };
  if (frontend === 'cluster-ip' && view.internalTrafficPolicy === 'Local') {
    if (clientNode === undefined) return { endpoints: [], unresolved: `Service ${view.service} spec.internalTrafficPolicy: Local, and the client's node is not known` };
    if (view.endpoints.some((e) => e.node === undefined)) return { endpoints: [], unresolved: `Service ${view.service} spec.internalTrafficPolicy: Local, and the endpoints' nodes are not known` };
    return { endpoints: view.endpoints.filter((e) => e.node === clientNode) };
  }
  return { endpoints: view.endpoints };
}

// ------------------------------------------------------------------ explain

export type ServiceVerdict = Verdict | 'Mixed' | 'Partial';

export interface ServiceEndpointExplanation {
  readonly endpoint: ServiceEndpointRef;
  /** NodePort: the node entered (absent: any node). */
  readonly entered?: string;
  /** NodePort with masquerade: the source the endpoint's policy judged. */
  readonly seenAs?: string;
  /** The pod-to-pod explanation at the endpoint's target port: policy after DNAT. */
  readonly explanation: Explanation;
}

export interface ServiceExplanation {
  readonly from: string;
  /** `svc/ns/name`. */
  readonly to: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly portName?: string;
  readonly frontend: ServiceFrontend;
  readonly via: string;
  /**
   * Allowed: every endpoint allows; Denied: none does, or there is no endpoint (the kernel
   * rejects at once); Partial: some allow and some deny (a connection gets through when it is
   * sent to an allowing endpoint); Unknown: endpoints or a verdict cannot be known.
   */
  readonly verdict: ServiceVerdict;
  /** Why the verdict is Unknown or why there is no endpoint. */
  readonly reason?: string;
  readonly unknownBecause?: readonly string[];
  readonly endpoints: readonly ServiceEndpointExplanation[];
  /** NodePort: one entry per node entered, each with its own verdict (the endpoints above, by `entered`). */
  readonly nodes?: readonly ServiceNodeExplanation[];
}

export interface ServiceNodeExplanation {
  readonly node?: string;
  readonly nodeIp?: string;
  readonly masquerade: boolean;
  /** What the endpoints' policy sees, in words. */
  readonly seen: string;
  readonly verdict: ServiceVerdict;
  readonly reason?: string;
}

function combine(verdicts: readonly (Verdict | 'Mixed' | ServiceVerdict)[]): ServiceVerdict {
  const set = new Set(verdicts);
  if (set.has('Unknown')) return 'Unknown';
  if (set.has('Mixed')) return 'Mixed';
  return set.size === 1 ? ([...set][0] as ServiceVerdict) : 'Partial';
}

/** `--from FROM --to svc/ns/name --port PORT`: each endpoint explained, then one verdict. */
export function explainService(engine: PolicyEngine, cluster: Pick<Cluster, 'services' | 'pods' | 'endpointSlices'> & { readonly nodes?: readonly Node[] }, from: string, service: string, port: number | string, protocol?: Protocol): ServiceExplanation {
  const view = findServicePort(servicePorts(cluster), service, port, protocol);
  const src = resolveEndpoint(engine, from);
  const frontend = frontendFor(view, src.endpoint.kind === 'external');
  const clientNode = src.endpoint.kind === 'pod' ? src.endpoint.pod?.node : undefined;
  const eligible = eligibleEndpoints(view, frontend, clientNode);
  const base = {
    from: src.label,
    to: `svc/${view.service}`,
    port: view.port,
    protocol: view.protocol,
    ...(view.portName !== undefined ? { portName: view.portName } : {}),
    frontend,
    via: frontendText(view, frontend),
  };
  if (frontend === 'node-port') return explainNodePort(engine, view, from, base, nodePortEntries(view, cluster.nodes ?? []));
  if (eligible.unresolved !== undefined) {
    return { ...base, verdict: 'Unknown', reason: `endpoints not known: ${eligible.unresolved}`, unknownBecause: [eligible.unresolved], endpoints: [] };
  }
  if (eligible.endpoints.length === 0) {
    return { ...base, verdict: 'Denied', reason: frontend === 'headless' ? 'no endpoint: the name resolves to no address' : 'no endpoint: the connection is rejected at once', endpoints: [] };
  }
  const endpoints = eligible.endpoints.map((e) => ({ endpoint: e, explanation: explain(engine, from, endpointTarget(e), e.protocol, e.port) }));
  const verdicts = new Set(endpoints.map((e) => e.explanation.verdict));
  const unknownBecause = [...new Set(endpoints.flatMap((e) => e.explanation.unknownBecause ?? []))].sort();
  const verdict: ServiceVerdict = verdicts.has('Unknown')
    ? 'Unknown'
    : verdicts.has('Mixed')
      ? 'Mixed'
      : verdicts.size === 1
        ? ([...verdicts][0] as Verdict)
        : 'Partial';
  return { ...base, verdict, ...(unknownBecause.length > 0 ? { unknownBecause } : {}), endpoints };
}

function explainNodePort(engine: PolicyEngine, view: ServicePortView, from: string, base: Omit<ServiceExplanation, 'verdict' | 'endpoints'>, entries: readonly NodePortEntry[]): ServiceExplanation {
  const nodes: ServiceNodeExplanation[] = [];
  const endpoints: ServiceEndpointExplanation[] = [];
  const because = new Set<string>();
  for (const en of entries) {
    const head = { ...(en.node !== undefined ? { node: en.node } : {}), ...(en.nodeIp !== undefined ? { nodeIp: en.nodeIp } : {}), masquerade: en.masquerade, seen: nodePortSeenText(en) };
    if (en.unresolved !== undefined) {
      because.add(en.unresolved);
      nodes.push({ ...head, verdict: 'Unknown', reason: `endpoints not known: ${en.unresolved}` });
      continue;
    }
    if (en.endpoints.length === 0) {
      nodes.push({ ...head, verdict: 'Denied', reason: en.dropped ? `externalTrafficPolicy Local and no endpoint on ${en.node ?? 'this node'}: dropped` : 'no endpoint: the connection is rejected at once' });
      continue;
    }
    const src = seenFrom(en, from);
    const mine = en.endpoints.map((e) => ({ endpoint: e, ...(en.node !== undefined ? { entered: en.node } : {}), ...(en.masquerade ? { seenAs: src } : {}), explanation: explain(engine, src, endpointTarget(e), e.protocol, e.port) }));
    endpoints.push(...mine);
    for (const x of mine) for (const r of x.explanation.unknownBecause ?? []) because.add(r);
    let verdict = combine(mine.map((x) => x.explanation.verdict));
    let reason: string | undefined;
    // Masqueraded to an address the manifests do not give: a verdict that differs between addresses is not known.
    if (en.masquerade && en.nodeIp === undefined && mine.some((x) => x.explanation.verdict === 'Mixed')) {
      verdict = 'Unknown';
      reason = NODE_ADDRESS_UNKNOWN;
      because.add(NODE_ADDRESS_UNKNOWN);
    }
    nodes.push({ ...head, verdict, ...(reason !== undefined ? { reason } : {}) });
  }
  const verdict = combine(nodes.map((n) => n.verdict));
  const unknownBecause = [...because].sort();
  const reason = nodes.length === 1 ? nodes[0]?.reason : verdict === 'Denied' && nodes.every((n) => n.reason !== undefined) ? [...new Set(nodes.map((n) => n.reason))].join('; ') : undefined;
  return { ...base, via: frontendText(view, 'node-port'), verdict, ...(reason !== undefined ? { reason } : {}), ...(verdict === 'Unknown' && unknownBecause.length > 0 ? { unknownBecause } : {}), endpoints, nodes };
}

export function formatServiceExplanation(e: ServiceExplanation): string {
  const n = e.endpoints.length;
  const allowed = e.endpoints.filter((x) => x.explanation.verdict === 'Allowed').length;
  const verdictText = e.nodes
    ? e.verdict === 'Unknown'
      ? `UNKNOWN (${e.reason ?? (e.unknownBecause ?? []).join('; ')})`
      : e.verdict === 'Partial'
        ? 'PARTIAL (it depends on the node entered or the endpoint chosen, below)'
        : `${e.verdict.toUpperCase()} (${e.nodes.length === 1 ? (e.reason ?? (e.nodes[0]?.node !== undefined ? `entered on ${e.nodes[0].node}` : 'entered on any node')) : 'on every node entered'})`
    : e.verdict === 'Unknown'
      ? `UNKNOWN (${e.reason ?? `invalid: ${(e.unknownBecause ?? []).join('; ')}`})`
      : e.verdict === 'Partial'
        ? `PARTIAL (${allowed} of ${n} endpoints allow: a connection gets through only when it is sent to one of them)`
        : e.verdict === 'Mixed'
          ? 'MIXED (the range splits, see the endpoints)'
          : n === 0
            ? `${e.verdict.toUpperCase()} (${e.reason ?? 'no endpoint'})`
            : `${e.verdict.toUpperCase()} (${e.verdict === 'Allowed' ? 'every' : 'no'} endpoint of ${n} allows)`;
  const lines = [`${e.from} => ${e.to} : ${e.protocol} ${e.port}${e.portName !== undefined ? ` (${e.portName})` : ''} via ${e.via}`, `verdict: ${verdictText}`];
  if (e.nodes) {
    for (const n of e.nodes) {
      lines.push(`entered on ${n.node ?? 'any node'}${n.nodeIp !== undefined ? ` (${n.nodeIp})` : ''}, ${n.seen}: ${n.verdict.toUpperCase()}${n.reason !== undefined ? ` (${n.reason})` : ''}`);
      for (const x of e.endpoints.filter((y) => y.entered === n.node)) {
        lines.push(`  endpoint ${endpointWords(x.endpoint)} ${x.endpoint.protocol} ${x.endpoint.port}: ${x.explanation.verdict.toUpperCase()}`);
        for (const l of formatExplanation(x.explanation).split('\n').slice(1)) lines.push(`    ${l}`);
      }
    }
    return lines.join('\n');
  }
  for (const x of e.endpoints) {
    lines.push(`endpoint ${endpointWords(x.endpoint)} ${x.endpoint.protocol} ${x.endpoint.port}: ${x.explanation.verdict.toUpperCase()}`);
    // The pod-to-pod explanation after its own first line (which repeats the endpoint).
    for (const l of formatExplanation(x.explanation).split('\n').slice(1)) lines.push(`  ${l}`);
  }
  return lines.join('\n');
}

// ------------------------------------------------------------------ analyze --services

export type ServiceReach = 'all' | 'partial' | 'unknown';

export interface ServiceConnLine {
  /** `ns/name[Kind]`, `ns/pod[Pod]` or `first-last[External]`. */
  readonly src: string;
  /** `ns/name[Service]`. */
  readonly service: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly portName?: string;
  readonly frontend: ServiceFrontend;
  readonly via: string;
  /** NodePort: the node entered. */
  readonly node?: string;
  /** NodePort, masqueraded: the source the endpoints' policy sees. */
  readonly seenAs?: string;
  readonly reach: ServiceReach;
  /** `workload PROTO port` of the endpoints that allow, deny, or whose verdict is unknown. */
  readonly allowed: readonly string[];
  readonly denied: readonly string[];
  readonly unknown: readonly string[];
  readonly unknownBecause?: readonly string[];
}

export interface ServiceWithoutEndpoints {
  readonly service: string;
  readonly port: number;
  readonly protocol: Protocol;
  readonly reason: string;
}

export interface ServiceConnectivity {
  readonly lines: readonly ServiceConnLine[];
  /** Service ports with no endpoint at all: every connection is rejected. */
  readonly withoutEndpoints: readonly ServiceWithoutEndpoints[];
}

function endpointText(e: ServiceEndpointRef): string {
  return `${e.workload} ${e.protocol} ${e.port}`;
}

type Cell = 'allowed' | 'denied' | 'unknown';

/**
 * Who reaches which Service port through which endpoints: pods through the ClusterIP (or,
 * headless, straight to the endpoints), external addresses through NodePorts. One line per
 * source and Service port where some endpoint allows (or might); `focus` keeps the lines whose
 * source or Service (`ns/name`) it names.
 */
export function serviceConnectivity(engine: PolicyEngine, cluster: Pick<Cluster, 'services' | 'pods' | 'endpointSlices'> & { readonly nodes?: readonly Node[] }, result: ConnectivityResult, opts: { readonly focus?: string } = {}): ServiceConnectivity {
  const views = servicePorts(cluster);
  const classOfPod = new Map<string, number>();
  for (const c of result.classes) if (c.kind === 'pod') for (const p of c.pods) classOfPod.set(`${p.namespace}/${p.name}`, c.index);
  const sources = clusterNodes(result);
  const externals = result.classes.filter((c) => c.kind === 'external' && c.range !== undefined).sort((a, b) => {
    const x = a.range?.start ?? 0n;
    const y = b.range?.start ?? 0n;
    return x < y ? -1 : x > y ? 1 : 0;
  });

  const externalClassOf = (ipText: string | undefined): number | undefined => {
    const ip = ipText !== undefined ? parseIp(ipText) : undefined;
    if (ip === undefined) return undefined;
    let lo = 0;
    let hi = externals.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = externals[mid]?.range;
      if (!r) return undefined;
      if (ip < r.start) hi = mid - 1;
      else if (ip > r.end) lo = mid + 1;
      else return externals[mid]?.index;
    }
    return undefined;
  };
  const cellOf = (srcClass: number, e: ServiceEndpointRef): Cell => {
    const dst = e.pod !== undefined ? classOfPod.get(e.pod) : externalClassOf(e.ip);
    if (dst === undefined) return 'unknown';
    if (allows(result.conns.get(result.connId(srcClass, dst)), e.protocol, e.port)) return 'allowed';
    if (allows(result.conns.get(result.unknownId(srcClass, dst)), e.protocol, e.port)) return 'unknown';
    return 'denied';
  };
  const srcSpec = (c: AnalysisClass): string => (c.kind === 'pod' && c.pods[0] ? `${c.pods[0].namespace}/${c.pods[0].name}` : formatIp(c.range?.start ?? 0n));
  const reasonsOf = (c: AnalysisClass, eps: readonly ServiceEndpointRef[]): string[] => {
    const out = new Set<string>();
    for (const e of eps) {
      try {
        for (const r of explain(engine, srcSpec(c), endpointTarget(e), e.protocol, e.port).unknownBecause ?? []) out.add(r);
      } catch (err) {
        if (!(err instanceof EndpointNotFoundError)) throw err;
        out.add(`endpoint ${endpointTarget(e)} not found`);
      }
    }
    return [...out].sort();
  };

  const nodes = cluster.nodes ?? [];
  /** A masqueraded endpoint's cell: its ingress judging the node's address (or, unknown, every external address alike). */
  const nodeCells = new Map<string, { cell: Cell; because: string[] }>();
  const nodeCell = (entry: NodePortEntry, e: ServiceEndpointRef): { cell: Cell; because: string[] } => {
    const k = `${entry.nodeIp ?? '*'}\u0000${endpointTarget(e)}\u0000${e.protocol}\u0000${e.port}`;
    const hit = nodeCells.get(k);
    if (hit) return hit;
    let out: { cell: Cell; because: string[] };
    if (entry.nodeIp !== undefined) {
      const x = explain(engine, entry.nodeIp, endpointTarget(e), e.protocol, e.port);
      out = { cell: x.verdict === 'Allowed' ? 'allowed' : x.verdict === 'Denied' ? 'denied' : 'unknown', because: [...(x.unknownBecause ?? [])] };
    } else {
      // Node addresses are IPv4 here (weir's NodePorts are): what every IPv4 address would get.
      const v4 = externals.filter((c) => c.range !== undefined && familyOf(c.range.start) === 4);
      const seen = new Set(v4.map((c) => cellOf(c.index, e)));
      out = seen.size === 1 ? { cell: [...seen][0] as Cell, because: seen.has('unknown') ? reasonsOf(v4[0] as AnalysisClass, [e]) : [] } : { cell: 'unknown', because: [NODE_ADDRESS_UNKNOWN] };
    }
    nodeCells.set(k, out);
    return out;
  };
  const lines: ServiceConnLine[] = [];
  const withoutEndpoints: ServiceWithoutEndpoints[] = [];
  const serviceName = (v: ServicePortView) => `${v.service}[Service]`;
  const focusHit = (src: ConnNode | undefined, v: ServicePortView): boolean => {
    const f = opts.focus;
    if (f === undefined) return true;
    if (v.service === f || serviceName(v) === f || `svc/${v.service}` === f) return true;
    if (!src || src.kind === 'external') return false;
    return src.name === f || `${src.namespace ?? ''}/${src.workloadName ?? ''}` === f || src.workloadName === f;
  };
  const lineOf = (src: string, v: ServicePortView, frontend: ServiceFrontend, eps: readonly ServiceEndpointRef[], cells: readonly Cell[], unresolved: string | undefined, reasons: () => string[], entry?: NodePortEntry): ServiceConnLine | undefined => {
    const pick = (k: Cell) => [...new Set(eps.filter((_, i) => cells[i] === k).map(endpointText))].sort();
    const allowed = pick('allowed');
    const denied = pick('denied');
    const unknown = pick('unknown');
    if (unresolved === undefined && allowed.length === 0 && unknown.length === 0) return undefined;
    const reach: ServiceReach = unresolved !== undefined || unknown.length > 0 ? 'unknown' : denied.length > 0 ? 'partial' : 'all';
    const because = unresolved !== undefined ? [unresolved] : unknown.length > 0 ? reasons() : [];
    return {
      src,
      service: serviceName(v),
      port: v.port,
      protocol: v.protocol,
      ...(v.portName !== undefined ? { portName: v.portName } : {}),
      frontend,
      via: frontendText(v, frontend, entry),
      ...(entry?.node !== undefined ? { node: entry.node } : {}),
      ...(entry?.masquerade ? { seenAs: entry.nodeIp ?? "the node's address" } : {}),
      reach,
      allowed,
      denied,
      unknown,
      ...(because.length > 0 ? { unknownBecause: because } : {}),
    };
  };

  for (const v of views) {
    if (v.unresolved === undefined && v.endpoints.length === 0) {
      if (focusHit(undefined, v)) withoutEndpoints.push({ service: serviceName(v), port: v.port, protocol: v.protocol, reason: v.emptyReason ?? (typeof v.targetPort === 'string' ? `no selected pod has a ${v.protocol} port named "${v.targetPort}"` : 'the selector matches no pod') });
      continue;
    }
    // Pods: the ClusterIP (or the endpoints themselves, headless).
    for (const src of sources) {
      if (!focusHit(src, v)) continue;
      const c = result.classes[src.classes[0] ?? 0];
      if (!c) continue;
      const frontend = frontendFor(v, false);
      const eligible = eligibleEndpoints(v, frontend, c.pods[0]?.node);
      const cells = eligible.endpoints.map((e) => cellOf(c.index, e));
      const line = lineOf(src.name, v, frontend, eligible.endpoints, cells, eligible.unresolved, () => reasonsOf(c, eligible.endpoints));
      if (line) lines.push(line);
    }
    // External addresses: the NodePort on each node entered, merged into runs of adjacent atoms alike.
    if (v.nodePort === undefined || v.address.kind !== 'virtual' || (opts.focus !== undefined && !focusHit(undefined, v))) continue;
    for (const entry of nodePortEntries(v, nodes)) {
      const eps = entry.endpoints;
      // Masqueraded: every endpoint judges the node's address, the same for every client.
      const masq = entry.masquerade ? eps.map((e) => nodeCell(entry, e)) : undefined;
      const cellAt = (ext: AnalysisClass, i: number, e: ServiceEndpointRef): Cell => masq?.[i]?.cell ?? cellOf(ext.index, e);
      let run: { atoms: AnalysisClass[]; sig: string } | undefined;
      const flush = () => {
        if (!run) return;
        const first = run.atoms[0]?.range;
        const last = run.atoms[run.atoms.length - 1]?.range;
        const rep = run.atoms[0];
        if (first && last && rep) {
          const cells = eps.map((e, i) => cellAt(rep, i, e));
          const reasons = () => (masq ? [...new Set(masq.flatMap((m) => m.because))].sort() : reasonsOf(rep, eps));
          const line = lineOf(`${formatInterval({ start: first.start, end: last.end })}[External]`, v, 'node-port', eps, cells, entry.unresolved, reasons, entry);
          if (line) lines.push(line);
        }
        run = undefined;
      };
      // Masqueraded, the client reaches the node's address: clients of its family (IPv4 when unknown).
      const family = entry.nodeIp !== undefined ? familyOf(parseIp(entry.nodeIp) ?? 0n) : 4;
      for (const ext of entry.masquerade ? externals.filter((c) => c.range !== undefined && familyOf(c.range.start) === family) : externals) {
        const sig = eps.map((e, i) => cellAt(ext, i, e)).join(',');
        const prev = run?.atoms[run.atoms.length - 1]?.range;
        const range = ext.range;
        const adjacent = prev !== undefined && range !== undefined && prev.end + 1n === range.start && familyOf(prev.start) === familyOf(range.start);
        if (run && adjacent && run.sig === sig) run.atoms.push(ext);
        else {
          flush();
          run = { atoms: [ext], sig };
        }
      }
      flush();
    }
  }
  const key = (l: ServiceConnLine) => `${l.src}\u0000${l.service}\u0000${String(l.port).padStart(5, '0')}\u0000${l.protocol}`;
  lines.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  return { lines, withoutEndpoints };
}

export const SERVICE_FORMATS = ['txt', 'json', 'csv', 'md'] as const;
export type ServiceFormat = (typeof SERVICE_FORMATS)[number];

function reachText(l: ServiceConnLine): string {
  const parts = [l.allowed.length > 0 ? `via ${l.allowed.join(', ')}` : '', l.denied.length > 0 ? `not via ${l.denied.join(', ')}` : '', l.unknown.length > 0 ? `UNKNOWN via ${l.unknown.join(', ')}` : ''].filter((x) => x !== '').join('; ');
  if (l.reach === 'unknown' && l.allowed.length === 0 && l.unknown.length === 0) return `UNKNOWN (endpoints not known: ${(l.unknownBecause ?? []).join('; ')})`;
  const because = l.unknownBecause ?? [];
  const prefix = l.reach === 'partial' ? 'PARTIAL ' : l.reach === 'unknown' ? `UNKNOWN (${because.includes(NODE_ADDRESS_UNKNOWN) ? '' : 'invalid: '}${because.join('; ')}) ` : '';
  return `${prefix}${parts}`;
}

export function serviceLineText(l: ServiceConnLine): string {
  return `${l.src} => ${l.service} : ${l.protocol} ${l.port} (${l.via}) ${reachText(l)}`;
}

function csvField(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function renderServiceConnectivity(sc: ServiceConnectivity, format: ServiceFormat): string {
  const none = sc.withoutEndpoints.map((w) => `${w.service} : ${w.protocol} ${w.port}: ${w.reason}`);
  switch (format) {
    case 'txt': {
      const out = sc.lines.map((l) => escapeControl(serviceLineText(l)));
      if (none.length > 0) out.push('', 'Services without endpoints (connections are rejected):', ...none.map(escapeControl));
      return out.length > 0 ? `${out.join('\n')}\n` : '';
    }
    case 'json':
      return escapeJson(`${JSON.stringify({ connections: sc.lines, withoutEndpoints: sc.withoutEndpoints }, null, 2)}\n`);
    case 'csv': {
      const rows = ['src,service,port,via,reach,allowed,denied,unknown'];
      for (const l of sc.lines) {
        rows.push([l.src, l.service, `${l.protocol} ${l.port}`, l.via, l.reach, l.allowed.join('; '), l.denied.join('; '), l.unknown.join('; ')].map((f) => csvField(escapeControl(f))).join(','));
      }
      return `${rows.join('\n')}\n`;
    }
    case 'md': {
      const cell = (s: string) => escapeControl(s).replace(/\|/g, '\\|');
      const rows = ['| src | service | port | via | reach | allowed | denied |', '|-----|---------|------|-----|-------|---------|--------|'];
      for (const l of sc.lines) rows.push(`| ${[l.src, l.service, `${l.protocol} ${l.port}`, l.via, l.reach === 'unknown' ? `unknown (${(l.unknownBecause ?? []).join('; ')})` : l.reach, l.allowed.join(', '), l.denied.join(', ')].map(cell).join(' | ')} |`);
      if (none.length > 0) rows.push('', 'Services without endpoints (connections are rejected):', '', ...none.map((n) => `- ${cell(n)}`));
      return `${rows.join('\n')}\n`;
    }
  }
}
