// Services on the live map, as a pure function of what the page has: the Service ports the
// agents report (/api/services) and the live edges, whose `via` says which of their flows a
// client addressed to a Service. Each Service (all its ports) becomes a node, wired
//   client group ──flows──► Service ──weight share──► group of its endpoints
// and the flows drawn into a Service leave the direct client → endpoint-group edge (what is
// left of it, traffic to pod addresses, stays). Computed per frame; the part the layout
// depends on (which nodes exist) is summarized in `layoutKey`, which changes only when a
// Service or an endpoint group appears or goes.
// Imports name their `.js` (as Node resolves them), so the model is unit-tested under Node too.
import type { Edge, GroupBy } from '../../../flows/aggregate.js';
import type { ServiceApiView } from '../../../api/services-schema.js';
import { namespaceOfGroup } from './layout.js';

/** A live edge (live.ts): an Edge with its map key and a revision. */
type LiveEdge = Edge & { key: string; rev: number };

export type { ServiceApiView };
type EndpointView = ServiceApiView['nodes'][number]['endpoints'][number];

/** Map-node id of a Service: one node for all its ports and frontends (ClusterIP, NodePorts). */
export const serviceNodeId = (service: string): string => `svc:${service}`;

/** The API's id of one Service view (service, port, frontend): what the Service panel opens. */
export const serviceId = (v: Pick<ServiceApiView, 'service' | 'portIndex' | 'frontend'>): string => `${v.service}/${v.portIndex}/${v.frontend}`;

export type EndpointState = 'ok' | 'idle' | 'drained' | 'failing';
export type LinkState = 'ok' | 'idle' | 'degraded' | 'down';
export type ServiceState = 'ok' | 'degraded' | 'rejecting' | 'unknown';

export interface ServiceNode {
  id: string;
  namespace: string;
  /** `ns/name`, or the address when no agent reports the Service (seen in flows only). */
  label: string;
  /** `10.96.0.80:80`, `10.96.0.81:80,9090`, or `NodePort 30080`. */
  address: string;
  protocol: string;
  mode: string;
  state: ServiceState;
  /** The view the Service panel opens (undefined: seen in flows only). */
  viewId: string | undefined;
  /** Flows of the window that clients addressed to it. */
  flows: number;
}

export interface ServiceLink {
  key: string;
  svc: string;
  group: string;
  /** Share of the Service's new connections the group's endpoints get: kernel weights, mean over the nodes (and ports). */
  share: number;
  state: LinkState;
  endpoints: { key: string; pod: string | undefined; state: EndpointState; share: number }[];
}

export interface ClientLink extends Edge {
  key: string;
  rev: number;
}

export interface ServiceMap {
  nodes: ServiceNode[];
  links: ServiceLink[];
  /** Client group → Service (counters: the flows addressed to it). */
  clients: ClientLink[];
  /** The live edges with the flows drawn through Services taken out; edges left empty are gone. */
  direct: LiveEdge[];
  /** Groups the links need that have no flow yet (endpoint groups of a quiet Service). */
  extraGroups: string[];
  /** Services known (reported or seen in flows) and drawn. */
  total: number;
  shown: number;
  /** Changes exactly when the Service nodes, their namespaces, their endpoint groups or the extra groups change. */
  layoutKey: string;
}

export interface ServiceMapOptions {
  group: GroupBy;
  /** Case-insensitive substring of `ns/name` or address; empty: every Service. */
  filter: string;
  /** Service nodes drawn at most; beyond it the busiest, the troubled and the selected are kept. */
  max: number;
  selected: string | undefined;
  /** Groups of pods learnt from flows (`ns/pod` → groups), for endpoints the API could not place. */
  podGroups: ReadonlyMap<string, { workload?: string; identity?: string }>;
}

const SEP = '\u0000';

function endpointState(e: EndpointView): EndpointState {
  return !e.healthy ? 'failing' : e.drained ? 'drained' : e.weight === 0 ? 'idle' : 'ok';
}

const WORSE: Record<EndpointState, number> = { ok: 0, idle: 1, drained: 2, failing: 3 };

/** The map group an endpoint's pod is drawn in, under the page's grouping. */
export function endpointGroup(e: EndpointView, serviceNs: string, by: GroupBy, podGroups: ServiceMapOptions['podGroups']): string {
  const slash = e.pod?.indexOf('/') ?? -1;
  const ns = e.pod && slash > 0 ? e.pod.slice(0, slash) : serviceNs;
  if (by === 'namespace') return ns;
  const learnt = e.pod ? podGroups.get(e.pod) : undefined;
  const known = by === 'workload' ? (e.workload ?? learnt?.workload) : (e.identity ?? learnt?.identity);
  // As the aggregator groups a pod it knows nothing more of (aggregate.ts groupOf).
  return known ?? `${ns}/${e.pod && slash > 0 ? e.pod.slice(slash + 1) : e.key.slice(0, e.key.lastIndexOf(':'))}`;
}

interface Ports {
  service: string;
  views: ServiceApiView[];
}

/** The views a Service's node stands for: its ClusterIP ports, else its NodePorts (the same ports seen from outside). */
function frontViews(p: Ports): ServiceApiView[] {
  const cluster = p.views.filter((v) => v.frontend === 'cluster');
  return cluster.length > 0 ? cluster : p.views;
}

/** Whether the open panel (a view id: `ns/name/port/frontend`, any port of the Service) is this node's. */
export function isSelected(n: Pick<ServiceNode, 'viewId' | 'label'>, selected: string | undefined): boolean {
  return n.viewId !== undefined && selected !== undefined && selected.startsWith(`${n.label}/`);
}

export function buildServiceMap(services: readonly ServiceApiView[], edges: readonly LiveEdge[], o: ServiceMapOptions): ServiceMap {
  // Services, and how a flow's Service address finds its Service.
  const ports = new Map<string, Ports>();
  const byAddress = new Map<string, string>();
  const byName = new Map<string, string[]>();
  for (const v of services) {
    const id = serviceNodeId(v.service);
    let p = ports.get(id);
    if (!p) {
      ports.set(id, (p = { service: v.service, views: [] }));
      byName.set(v.service, [id]);
    }
    p.views.push(v);
    if (v.frontend === 'cluster' && v.clusterIP) byAddress.set(`${v.clusterIP}|${v.port}`, id);
    else byAddress.set(`${v.service}|node|${v.port}`, id);
  }
  const portOf = (via: { ip: string; port: number; name?: string }): string => {
    const exact = byAddress.get(`${via.ip}|${via.port}`);
    if (exact) return exact;
    if (via.name !== undefined) {
      const np = byAddress.get(`${via.name}|node|${via.port}`);
      if (np) return np;
      const first = byName.get(via.name)?.[0];
      if (first) return first;
    }
    return `svc:?${via.name ?? ''}|${via.ip}:${via.port}`;
  };

  // Client flows per (client group, Service port), and what is left of each direct edge.
  const clientMap = new Map<string, ClientLink>();
  const flowsTo = new Map<string, number>();
  const seenOnly = new Map<string, { via: { ip: string; port: number; name?: string }; ns: string }>();
  const reroutes: { e: LiveEdge; via: { svc: string; c: NonNullable<Edge['via']>[string] }[] }[] = [];
  for (const e of edges) {
    if (!e.via) continue;
    const list: { svc: string; c: NonNullable<Edge['via']>[string] }[] = [];
    for (const c of Object.values(e.via)) {
      const svc = portOf(c);
      if (!ports.has(svc) && !seenOnly.has(svc)) seenOnly.set(svc, { via: c, ns: c.name?.split('/')[0] ?? namespaceOfGroup(e.dst) });
      list.push({ svc, c });
      flowsTo.set(svc, (flowsTo.get(svc) ?? 0) + c.flows);
    }
    reroutes.push({ e, via: list });
  }

  // Which Services are drawn.
  const q = o.filter.trim().toLowerCase();
  const candidates: ServiceNode[] = [];
  for (const [id, p] of ports) {
    const shown = frontViews(p);
    const first = shown[0] as ServiceApiView;
    const eps = p.views.flatMap((v) => v.nodes.flatMap((n) => n.endpoints));
    const reject = p.views.some((v) => v.nodes.some((n) => n.reject)) || eps.length === 0;
    const troubled = eps.some((e) => !e.healthy || e.drained);
    const portList = [...new Set(shown.map((v) => v.port))].join(',');
    candidates.push({
      id,
      namespace: first.namespace,
      label: p.service,
      address: first.frontend === 'cluster' ? `${first.clusterIP ?? '?'}:${portList}` : `NodePort ${portList}`,
      protocol: [...new Set(shown.map((v) => v.protocol))].join(','),
      mode: [...new Set(shown.map((v) => v.mode))].join(','),
      state: reject ? 'rejecting' : troubled ? 'degraded' : 'ok',
      viewId: serviceId(first),
      flows: flowsTo.get(id) ?? 0,
    });
  }
  for (const [id, s] of seenOnly) {
    candidates.push({ id, namespace: s.ns, label: s.via.name ?? `${s.via.ip}:${s.via.port}`, address: `${s.via.ip}:${s.via.port}`, protocol: '', mode: 'not reported', state: 'unknown', viewId: undefined, flows: flowsTo.get(id) ?? 0 });
  }
  const matching = q ? candidates.filter((n) => n.label.toLowerCase().includes(q) || n.address.toLowerCase().includes(q)) : candidates;
  let drawn = matching;
  if (drawn.length > o.max) {
    // Many Services: keep the selected one, then those in trouble, then the busiest.
    const rank = (n: ServiceNode): number => (isSelected(n, o.selected) ? 3 : n.state === 'rejecting' || n.state === 'degraded' ? 2 : n.flows > 0 ? 1 : 0);
    drawn = [...drawn].sort((a, b) => rank(b) - rank(a) || b.flows - a.flows || a.label.localeCompare(b.label)).slice(0, o.max);
  }
  drawn.sort((a, b) => a.label.localeCompare(b.label) || a.id.localeCompare(b.id));
  const shown = new Set(drawn.map((n) => n.id));

  // Service → endpoint groups: shares averaged over the nodes that balance the port.
  const links: ServiceLink[] = [];
  for (const n of drawn) {
    const p = ports.get(n.id);
    if (!p) continue;
    const byGroup = new Map<string, ServiceLink>();
    // Every (port, node) balances on its own: the share is their mean.
    const shown = frontViews(p);
    const parts = shown.reduce((k, v) => k + v.nodes.length, 0);
    for (const v of shown) {
      for (const node of v.nodes) {
        const total = node.endpoints.reduce((sum, e) => sum + Math.max(0, e.weight), 0);
        for (const e of node.endpoints) {
          const g = endpointGroup(e, v.namespace, o.group, o.podGroups);
          let l = byGroup.get(g);
          if (!l) byGroup.set(g, (l = { key: `${n.id}${SEP}${g}`, svc: n.id, group: g, share: 0, state: 'ok', endpoints: [] }));
          const share = total > 0 ? Math.max(0, e.weight) / total / parts : 0;
          l.share += share;
          const st = endpointState(e);
          // One dot per pod, whichever of its ports.
          const key = e.pod ?? e.key.slice(0, e.key.lastIndexOf(':'));
          const known = l.endpoints.find((x) => x.key === key);
          if (!known) l.endpoints.push({ key, pod: e.pod, state: st, share });
          else {
            known.share += share;
            if (WORSE[st] > WORSE[known.state]) known.state = st;
          }
        }
      }
    }
    for (const l of byGroup.values()) {
      const bad = l.endpoints.filter((e) => e.state === 'failing' || e.state === 'drained').length;
      l.state = bad === l.endpoints.length ? 'down' : bad > 0 ? 'degraded' : l.share < 0.0005 ? 'idle' : 'ok';
      l.endpoints.sort((a, b) => (a.pod ?? a.key).localeCompare(b.pod ?? b.key));
      links.push(l);
    }
  }

  // Client → Service, and the remainder of each rerouted edge.
  const rerouted = new Map<string, LiveEdge>();
  for (const { e, via } of reroutes) {
    let rest: LiveEdge | undefined;
    for (const { svc, c } of via) {
      if (!shown.has(svc)) continue;
      const k = `${e.src}${SEP}${svc}`;
      let cl = clientMap.get(k);
      if (!cl) clientMap.set(k, (cl = { key: k, src: e.src, dst: svc, flows: 0, bytes: 0, packets: 0, forwarded: 0, dropped: 0, audit: 0, lastSeen: 0, rev: 0 }));
      cl.flows += c.flows;
      cl.bytes += c.bytes;
      cl.forwarded += c.forwarded;
      cl.dropped += c.dropped;
      cl.audit += c.audit;
      cl.lastSeen = Math.max(cl.lastSeen, e.lastSeen);
      cl.rev += e.rev;
      rest ??= { ...e, via: undefined };
      rest.flows -= c.flows;
      rest.bytes -= c.bytes;
      rest.forwarded -= c.forwarded;
      rest.dropped -= c.dropped;
      rest.audit -= c.audit;
    }
    if (rest) rerouted.set(e.key, rest);
  }
  const direct: LiveEdge[] = [];
  for (const e of edges) {
    const r = rerouted.get(e.key);
    if (!r) direct.push(e);
    else if (r.flows > 0 || r.bytes > 0) direct.push(r);
  }

  const known = new Set<string>();
  for (const e of edges) {
    known.add(e.src);
    known.add(e.dst);
  }
  const extraGroups = [...new Set(links.map((l) => l.group).filter((g) => !known.has(g)))].sort();
  // Empty when there is nothing to add: the map without Services is laid out exactly as before they were polled.
  const layoutKey = drawn.length === 0 && extraGroups.length === 0 ? '' : `${drawn.map((n) => `${n.id}@${n.namespace}`).join(',')}|${links.map((l) => l.key).join(',')}|${extraGroups.join(',')}`;
  return { nodes: drawn, links, clients: [...clientMap.values()], direct, extraGroups, total: candidates.length, shown: drawn.length, layoutKey };
}
