// The service NAT section of the table (see render.ts, table.ts): resolved Services (src/lb)
// → DNAT to weighted endpoints, in the style of kube-proxy's nftables mode. Pure: no I/O, no
// clock; equal inputs give equal rulesets.
//
//   chain svc_check_pre (hook prerouting, priority -110)   and svc_check_out (hook output)
//     ct state new ip daddr . meta l4proto . th dport vmap @svc_reject      no endpoint: reject now
//     ct state new ip daddr @nodeport_ips meta l4proto . th dport vmap @svc_reject_np
//                                                     NodePorts: reject, or drop (Local, none here)
//   chain svc_nat_pre   (nat, hook prerouting, priority dstnat)   and svc_nat_out (hook output)
//     ip daddr . meta l4proto . th dport vmap @svc_ports                    ClusterIPs: one lookup
//     ip daddr @nodeport_ips meta l4proto . th dport vmap @svc_nodeports    NodePorts: one lookup
//   chain ext_<port>        NodePort with externalTrafficPolicy Cluster (kube-proxy's external chain)
//     jump svc_mark_masq                     meta mark set meta mark or 0x4000
//     goto svc_<port>
//   chain svc_<port>        one per Service port (and frontend, when the traffic policies differ)
//     meta l4proto tcp dnat ip to numgen random mod 1000 map @lb_<port>
//                            weights as ranges of endpoint address . port:
//                            { 0-899 : 10.244.1.5 . 8080, 900-999 : 10.244.2.7 . 8080 }
//                            weighted and adaptive Services: `numgen inc mod 100` over slots
//                            in smooth weighted round-robin order (weightMap below)
//   with ClientIP affinity, a chain per endpoint instead (the affinity set needs one):
//   chain svc_<port>
//     ip saddr @aff_<ep> goto ep_<ep>        one dynamic set with timeout per endpoint
//     numgen random mod 1000 vmap @lb_<port> { 0-899 : goto ep_a, 900-999 : goto ep_b }
//   chain ep_<ep>
//     meta l4proto tcp update @aff_<ep> { ip saddr } dnat ip to 10.244.1.5:8080
//   chain svc_hairpin (filter, hook prerouting, priority dstnat + 10)
//     ct state new ct status dnat fib daddr . iif oif exists meta mark set meta mark or 0x4000
//   chain svc_masq (nat, hook postrouting, priority srcnat)      kube-proxy's masquerading chain
//     meta mark & 0x4000 == 0 return;  meta mark set meta mark xor 0x4000;  snat ip to <node> fully-random
//
// Masquerade, as kube-proxy decides it: (1) every connection to a NodePort whose Service has
// externalTrafficPolicy Cluster (it may be sent to another node, whose reply must come back
// through this one to be un-translated); (2) hairpin: a pod sent to itself through its Service
// (after DNAT the packet would go back out of the interface it came in on; kube-proxy matches
// `ip saddr <endpoint>` in each endpoint chain, weir, which has no chain per endpoint, asks the
// route: `fib daddr . iif oif exists`). Not masqueraded: ClusterIP traffic (pods keep their
// address), and NodePorts with externalTrafficPolicy Local (the client's address is kept, only
// this node's endpoints are used). The source becomes *the node's address* (the one NodePorts
// answer on, the Node's address in the cluster model) rather than kube-proxy's `masquerade`
// (the address of whichever interface the packet leaves by: in the lab the VXLAN device's
// 10.244.i.0 towards another node, the underlay address towards a local pod): one address per
// node, the one the analyzer names and a policy can be written against. Without a node address
// the section falls back to `masquerade`.
//
// externalTrafficPolicy Local on a node without a local endpoint (while the Service has
// endpoints elsewhere): dropped, as kube-proxy does (`no-endpoint-nodeports` … `drop`; "if
// there are no node-local endpoints, kube-proxy does not forward any traffic"); the same for
// internalTrafficPolicy Local on the ClusterIP. A Service with no endpoint at all rejects.
//
// The lookup is one map whatever the number of Services; rules grow with Service ports and
// endpoints, never with clients. A weight change is an element change of `lb_<port>` only
// (`serviceWeightPatch`, the element fast path): conntrack keeps every established connection
// on the endpoint it was translated to, so nothing established is dropped or moved. One
// exception: with ClientIP affinity, an endpoint whose weight drops to 0 (drained, unhealthy)
// also loses its affinity rule, so sticky clients move too — a chain refill, done by the
// ordinary partial diff (still no established connection touched).
//
// DNAT happens before the forward hook, so the policy filter section sees, and judges, the real
// destination pod and port — NetworkPolicy after translation, as in Kubernetes. SNAT happens
// after it (postrouting): the filter judges the ingress of a masqueraded connection in
// postrouting, after the translation, so the backend's policy sees the node's address on
// whichever node the connection entered (filter.ts, `ingress_snat`).

import type { Cluster, Pod, Service } from '../model/cluster.js';
import { allocate, type AllocateOptions } from '../lb/allocate.js';
import type { Endpoint, ResolvedPort, ResolvedService } from '../lb/endpoints.js';
import { endpointsForNode, locationOf, resolveServices, type Frontend, type ResolveOptions } from '../lb/endpoints.js';
import { parseBalancing } from '../lb/config.js';
import { computeWeights, interleave, slotRuns, WEIGHT_TOTAL, type WeightResult } from '../lb/weights.js';
import { hasElementText, patchElements, type ElementChange } from './elements.js';
import { MASQUERADE_MARK, nftName } from './names.js';
import { bits, dnat, dnatMap, drop, elementText, end, flags, goto, inSet, is, jump, markBits, quoted, reject, ret, rule, snat, update, vmap, type Element, type Rule } from './nft.js';
import type { NftSet, Ruleset } from './ruleset.js';
import type { Section, TableBuilder } from './table.js';
import { TableBuilder as Builder } from './table.js';

export const SERVICE_PORTS_MAP = 'svc_ports';
export const SERVICE_REJECT_MAP = 'svc_reject';
/** NodePorts, kube-proxy's `service-nodeports`: `inet_proto . inet_service : verdict`. */
export const SERVICE_NODEPORTS_MAP = 'svc_nodeports';
/** NodePorts without a usable endpoint here (reject; drop for Local), kube-proxy's `no-endpoint-nodeports`. */
export const SERVICE_REJECT_NODEPORTS_MAP = 'svc_reject_np';
/** The node's addresses NodePorts answer on, kube-proxy's `nodeport-ips`. */
export const NODEPORT_IPS_SET = 'nodeport_ips';
const REJECT_CHAIN = 'svc_reject_conn';
const MARK_MASQ_CHAIN = 'svc_mark_masq';
const KEY_TYPE = 'ipv4_addr . inet_proto . inet_service : verdict';
const NODEPORT_KEY_TYPE = 'inet_proto . inet_service : verdict';
const FIVE_TUPLE = ['ip daddr', 'meta l4proto', 'th dport'] as const;
const PORT_TUPLE = ['meta l4proto', 'th dport'] as const;

export interface ServicesInput {
  readonly services: readonly ResolvedService[];
  /** The node this table is for (traffic policy Local, prefer-local). */
  readonly node: string;
  /** The node's location, for prefer-local. */
  readonly nodeLocation?: string;
  /** The node's addresses NodePorts answer on. */
  readonly nodeIps: readonly string[];
  /** Locations being drained (`weir lb drain`). */
  readonly drained?: ReadonlySet<string>;
  /** Endpoint health by endpoint key (`ip:port`); absent = healthy. */
  readonly health?: ReadonlyMap<string, boolean>;
  /** Adaptive factors per Service port (`ns/name/portIndex`), by endpoint key. */
  readonly adaptive?: ReadonlyMap<string, ReadonlyMap<string, number>>;
  /**
   * nft wildcard of the node's pod interfaces (the lab's `wp*`): kube-proxy's local-traffic
   * detector (`--detect-local-mode=InterfaceNamePrefix`), for the short-circuit of a pod's
   * connection to an externalTrafficPolicy Local NodePort.
   */
  readonly podInterfaces?: string;
}

/**
 * The section's input for one node from the cluster: addresses allocated, endpoints resolved
 * (cluster-wide, identical on every node), the node's addresses and location.
 */
export function planServices(
  cluster: Cluster,
  slices: Parameters<typeof resolveServices>[1],
  node: string,
  opts: AllocateOptions & ResolveOptions & Pick<ServicesInput, 'drained' | 'health' | 'adaptive' | 'podInterfaces'> = {},
): ServicesInput {
  const resolved = resolveServices(cluster, slices, allocate(cluster.services, opts), opts);
  const n = cluster.nodes.find((x) => x.name === node);
  const location = locationOf(n?.labels);
  return {
    services: resolved.services,
    node,
    nodeIps: n?.ip !== undefined ? [n.ip] : [],
    ...(location !== undefined ? { nodeLocation: location } : {}),
    ...(opts.drained ? { drained: opts.drained } : {}),
    ...(opts.health ? { health: opts.health } : {}),
    ...(opts.adaptive ? { adaptive: opts.adaptive } : {}),
    ...(opts.podInterfaces !== undefined ? { podInterfaces: opts.podInterfaces } : {}),
  };
}

/**
 * Whether any of `services` selects `pod` (same namespace, selector labels all present): only
 * such a pod can change the service NAT section (its endpoints); the others leave it as it is,
 * so their changes stay element patches of the policy filter.
 */
export function selectsPod(services: readonly Service[], pod: Pick<Pod, 'namespace' | 'labels'>): boolean {
  return services.some((svc) => svc.namespace === pod.namespace && svc.selector !== undefined && Object.entries(svc.selector).every(([k, v]) => pod.labels[k] === v));
}

/** What one Service port decided on this node, for status output and tests. */
export interface PortDecision {
  readonly service: string;
  readonly port: ResolvedPort;
  readonly frontend: Frontend;
  readonly endpoints: readonly Endpoint[];
  readonly result: WeightResult;
  readonly chain: string;
  /**
   * A traffic policy Local leaves this node no endpoint while the Service has some elsewhere:
   * kube-proxy drops (rather than rejects) such connections.
   */
  readonly dropNoLocal: boolean;
  /** Connections through this frontend are masqueraded (NodePort, externalTrafficPolicy Cluster). */
  readonly masquerade: boolean;
  /**
   * Weighted or adaptive (or split by location): endpoints are taken in an interleaved order,
   * `numgen inc` over `interleave`'s slots, rather than by weighted random.
   */
  readonly interleaved: boolean;
}

const protoOf = (p: ResolvedPort): 'tcp' | 'udp' | 'sctp' => (p.protocol === 'UDP' ? 'udp' : p.protocol === 'SCTP' ? 'sctp' : 'tcp');

/** Every (Service port, frontend) with its endpoints and weights on `input.node`. */
export function decide(input: ServicesInput): PortDecision[] {
  const out: PortDecision[] = [];
  for (const svc of input.services) {
    if (svc.address.kind !== 'virtual') continue;
    const { config } = parseBalancing(svc.service);
    for (const port of svc.ports) {
      if (port.protocol === 'SCTP') continue;
      const frontends: Frontend[] = ['cluster'];
      if (port.nodePort !== undefined && input.nodeIps.length > 0) frontends.push('node-port');
      for (const frontend of frontends) {
        const endpoints = endpointsForNode(svc, port, frontend, input.node);
        const policy = frontend === 'cluster' ? svc.internalTrafficPolicy : svc.externalTrafficPolicy;
        const dropNoLocal = policy === 'Local' && endpoints.length === 0 && port.endpoints.length > 0;
        const computed = computeWeights({
          endpoints,
          config,
          ...(input.health ? { health: input.health } : {}),
          ...(input.drained ? { drained: input.drained } : {}),
          ...(input.nodeLocation !== undefined ? { clientLocation: input.nodeLocation } : {}),
          ...(input.adaptive?.get(`${svc.key}/${port.index}`) ? { adaptive: input.adaptive.get(`${svc.key}/${port.index}`) } : {}),
        });
        const result: WeightResult = dropNoLocal ? { ...computed, notes: [`${frontend === 'cluster' ? 'internal' : 'external'}TrafficPolicy Local and no endpoint on ${input.node}: connections are dropped`] } : computed;
        // Both frontends share a chain unless their traffic policies give them other endpoints.
        const own = frontend === 'node-port' && svc.internalTrafficPolicy !== svc.externalTrafficPolicy;
        const id = `${svc.key}/${port.index}${own ? '/node-port' : ''}`;
        out.push({ service: svc.key, port, frontend, endpoints, result, chain: nftName('svc', `${svc.name}_${port.port}`, id), dropNoLocal, masquerade: frontend === 'node-port' && svc.externalTrafficPolicy === 'Cluster', interleaved: config.mode !== 'equal' || config.split !== undefined });
      }
    }
  }
  return out;
}

/**
 * `lb_<…>` elements: contiguous ranges of the numgen value, sized by the weights, each to the
 * endpoint's address and port (`0-899 : 10.244.1.5 . 8080`), or, with ClientIP affinity, to
 * its chain (`0-899 : goto ep_…`).
 */
function weightElements(decision: PortDecision, target: (e: Endpoint) => Element['value']): Element[] {
  const out: Element[] = [];
  let at = 0;
  for (const e of decision.endpoints) {
    const w = decision.result.weights.get(e.key) ?? 0;
    if (w <= 0) continue;
    out.push({ key: [w === 1 ? `${at}` : `${at}-${at + w - 1}`], value: target(e) });
    at += w;
  }
  return out;
}

/**
 * The weight map of a port: its numgen expression and elements. Equal weights, as kube-proxy:
 * `numgen random mod 1000` over contiguous ranges. Weighted and adaptive: `numgen inc mod 100`
 * over slots in smooth weighted round-robin order (`interleave`), runs of one endpoint merged
 * (`0-1 : a, 2 : b, 3-4 : a, …`): at most 100 elements, so a weight change stays a small
 * element patch. (`numgen inc` is one counter per rule, shared by all CPUs.)
 */
function weightMap(decision: PortDecision, target: (e: Endpoint) => Element['value']): { numgen: `numgen ${'random' | 'inc'} mod ${number}`; elements: Element[] } {
  const slots = decision.interleaved ? interleave(decision.result.weights) : undefined;
  if (!slots) return { numgen: `numgen random mod ${WEIGHT_TOTAL}`, elements: weightElements(decision, target) };
  const byKey = new Map(decision.endpoints.map((e) => [e.key, e]));
  const elements = slotRuns(slots).map(({ from, to, key }): Element => ({ key: [to === from ? `${from}` : `${from}-${to}`], value: target(byKey.get(key) as Endpoint) }));
  return { numgen: `numgen inc mod ${slots.length}`, elements };
}

const sorted = (elements: readonly Element[]): string[] => [...new Set(elements.map(elementText))].sort();

export function servicesSection(input: ServicesInput): Section {
  return {
    name: 'service nat',
    render(t: TableBuilder): void {
      const ports: Element[] = [];
      const nodePorts: Element[] = [];
      const rejects: Element[] = [];
      const rejectNodePorts: Element[] = [];
      const decisions = decide(input);
      const svcByKey = new Map(input.services.map((s) => [s.key, s]));
      // The chain with every endpoint of a port (its ClusterIP's, internalTrafficPolicy Cluster):
      // where kube-proxy short-circuits local traffic to an externalTrafficPolicy Local NodePort.
      const allEndpointsChain = new Map<string, string>();
      for (const d of decisions) {
        const svc = svcByKey.get(d.service) as ResolvedService;
        if (d.frontend === 'cluster' && !d.result.reject && svc.internalTrafficPolicy === 'Cluster') allEndpointsChain.set(`${d.service}/${d.port.index}`, d.chain);
      }
      for (const d of decisions) {
        const svc = svcByKey.get(d.service) as ResolvedService;
        const proto = protoOf(d.port);
        const nodePort = d.frontend === 'node-port';
        const key = nodePort ? [proto, `${d.port.nodePort as number}`] : [(svc.address as { ip: string }).ip, proto, `${d.port.port}`];
        // (Not when this node rejects for other reasons: drained or fenced off, which the check chain handles.)
        const short = nodePort && svc.externalTrafficPolicy === 'Local' && (!d.result.reject || d.dropNoLocal) ? allEndpointsChain.get(`${d.service}/${d.port.index}`) : undefined;
        if (short !== undefined) {
          // kube-proxy's external chain for Local policy: a pod's connection goes to any endpoint
          // unmasqueraded ("short-circuit pod traffic"), the node's own is masqueraded and goes to
          // any endpoint ("masquerade local traffic"), everything else to this node's endpoints —
          // none here (the Service has some elsewhere): dropped.
          const ext = nftName('ext', `${svc.name}_${d.port.nodePort as number}`, `${d.chain}/external`);
          const rules: Rule[] = [];
          if (input.podInterfaces !== undefined) rules.push(rule([is('iifname', quoted(input.podInterfaces))], end(goto(short))));
          rules.push(rule([is('fib saddr type', 'local')], end(jump(MARK_MASQ_CHAIN))), rule([is('fib saddr type', 'local')], end(goto(short))), end(d.dropNoLocal ? drop : goto(d.chain)));
          t.chain(ext, rules);
          nodePorts.push({ key, value: goto(ext) });
          if (d.result.reject) continue;
        } else if (d.result.reject) {
          // kube-proxy: no endpoint at all → reject; Local without a local one → drop.
          (nodePort ? rejectNodePorts : rejects).push({ key, value: d.dropNoLocal ? drop : goto(REJECT_CHAIN) });
          continue;
        }
        if (d.masquerade) {
          // kube-proxy's external chain for Cluster policy: mark for masquerade, then the endpoints.
          const ext = nftName('ext', `${svc.name}_${d.port.nodePort as number}`, `${d.chain}/external`);
          t.chain(ext, [end(jump(MARK_MASQ_CHAIN)), end(goto(d.chain))]);
          nodePorts.push({ key, value: goto(ext) });
        } else if (short === undefined) (nodePort ? nodePorts : ports).push({ key, value: goto(d.chain) });
        if (t.hasChain(d.chain)) continue;
        const epChain = (e: Endpoint): string => nftName('ep', `${svc.name}_${e.ip}_${e.port}`, `${d.chain}/${e.key}`);
        const affinity = (e: Endpoint): string => nftName('aff', `${svc.name}_${e.ip}`, `${d.chain}/${e.key}`);
        const lbMap = nftName('lb', `${svc.name}_${d.port.port}`, d.chain);
        const rules: Rule[] = [];
        if (svc.affinityTimeoutSeconds === undefined) {
          // No chain per endpoint: the weight map holds each endpoint's address and port, and
          // DNAT reads them from it. A weight or endpoint change is then data elements only; a
          // `goto` element would make nf_tables re-validate every chain reachable from the base
          // chains at commit (measured: 719 ms per change with 10k Services, 60k chains).
          const { numgen, elements } = weightMap(d, (e) => `${e.ip} . ${e.port}`);
          t.set({ name: lbMap, kind: 'map', type: `typeof ${numgen} : ip daddr . ${proto} dport`, flags: ['interval'], extra: [], dynamic: false, elements: sorted(elements) });
          t.chain(d.chain, [rule([is('meta l4proto', proto)], end(undefined, dnatMap(numgen, lbMap)))]);
          continue;
        }
        for (const e of d.endpoints) {
          if ((d.result.weights.get(e.key) ?? 0) <= 0) continue;
          const epRules: Rule[] = [];
          if (svc.affinityTimeoutSeconds !== undefined) {
            // kube-proxy's shape: a client seen within the timeout goes back to its endpoint.
            t.set({ name: affinity(e), kind: 'set', type: 'ipv4_addr', flags: ['dynamic', 'timeout'], extra: [`timeout ${svc.affinityTimeoutSeconds}s`], dynamic: true, elements: [] });
            rules.push(rule([inSet('ip saddr', affinity(e))], end(goto(epChain(e)))));
            epRules.push(end(undefined, update(affinity(e), ['ip saddr'])));
          }
          epRules.push(rule([is('meta l4proto', proto)], end(undefined, dnat(e.ip, e.port))));
          t.chain(epChain(e), mergeUpdate(epRules));
        }
        const { numgen, elements } = weightMap(d, (e) => goto(epChain(e)));
        t.set({ name: lbMap, kind: 'map', type: `typeof ${numgen} : verdict`, flags: ['interval'], extra: [], dynamic: false, elements: sorted(elements) });
        rules.push(end(vmap([numgen], lbMap)));
        t.chain(d.chain, rules);
      }
      t.set({ name: SERVICE_PORTS_MAP, kind: 'map', type: KEY_TYPE, flags: [], extra: [], dynamic: false, elements: sorted(ports) });
      t.set({ name: SERVICE_REJECT_MAP, kind: 'map', type: KEY_TYPE, flags: [], extra: [], dynamic: false, elements: sorted(rejects) });
      t.set({ name: SERVICE_NODEPORTS_MAP, kind: 'map', type: NODEPORT_KEY_TYPE, flags: [], extra: [], dynamic: false, elements: sorted(nodePorts) });
      t.set({ name: SERVICE_REJECT_NODEPORTS_MAP, kind: 'map', type: NODEPORT_KEY_TYPE, flags: [], extra: [], dynamic: false, elements: sorted(rejectNodePorts) });
      t.set({ name: NODEPORT_IPS_SET, kind: 'set', type: 'ipv4_addr', flags: [], extra: [], dynamic: false, elements: [...new Set(input.nodeIps)].sort() });
      // TCP gets a reset, everything else ICMP port unreachable: a client fails at once.
      t.chain(REJECT_CHAIN, [rule([is('meta l4proto', 'tcp')], end(reject(true))), end(reject(false))]);
      const check: Rule[] = [
        rule([flags('ct state', 'new')], end(vmap(FIVE_TUPLE, SERVICE_REJECT_MAP))),
        rule([flags('ct state', 'new'), inSet('ip daddr', NODEPORT_IPS_SET)], end(vmap(PORT_TUPLE, SERVICE_REJECT_NODEPORTS_MAP))),
      ];
      const nat: Rule[] = [end(vmap(FIVE_TUPLE, SERVICE_PORTS_MAP)), rule([inSet('ip daddr', NODEPORT_IPS_SET)], end(vmap(PORT_TUPLE, SERVICE_NODEPORTS_MAP)))];
      t.chain('svc_check_pre', check, 'type filter hook prerouting priority -110; policy accept;');
      t.chain('svc_check_out', check, 'type filter hook output priority -110; policy accept;');
      t.chain('svc_nat_pre', nat, 'type nat hook prerouting priority dstnat; policy accept;');
      t.chain('svc_nat_out', nat, 'type nat hook output priority -100; policy accept;');
      // kube-proxy's mark-for-masquerade and masquerading chains; the mark is cleared before the
      // translation so nothing after it mistakes the packet for one still to masquerade.
      t.chain(MARK_MASQ_CHAIN, [end(undefined, markBits('or', MASQUERADE_MARK))]);
      // Hairpin, after DNAT (priority dstnat + 10 sees the translated destination): a packet whose
      // route goes back out of the interface it came in on.
      t.chain('svc_hairpin', [rule([flags('ct state', 'new'), flags('ct status', 'dnat'), is('fib daddr . iif oif', 'exists')], end(undefined, markBits('or', MASQUERADE_MARK)))], 'type filter hook prerouting priority -90; policy accept;');
      t.chain(
        'svc_masq',
        [rule([bits('meta mark', MASQUERADE_MARK, 0)], end(ret)), end(undefined, markBits('xor', MASQUERADE_MARK), snat([...input.nodeIps].sort()[0]))],
        'type nat hook postrouting priority srcnat; policy accept;',
      );
    },
  };
}

/** `update @aff { ip saddr }` and the DNAT in one rule, so the set is refreshed only when translated. */
function mergeUpdate(rules: readonly Rule[]): Rule[] {
  if (rules.length !== 2) return [...rules];
  const [u, d] = rules;
  return [{ matches: d.matches, statements: [...u.statements, ...d.statements], ...(d.verdict ? { verdict: d.verdict } : {}) }];
}

/** The service section alone, as a ruleset (tests, status). */
export function renderServices(input: ServicesInput): Ruleset {
  const t = new Builder();
  t.section = 'service nat';
  servicesSection(input).render(t);
  return t.build({});
}

/**
 * The element fast path for weights: when only the weights of existing endpoints changed
 * (same Services, endpoints, chains), the change is element updates of the `lb_*` maps,
 * applied to `prev` without re-rendering anything else. Undefined when more than that changed
 * (the caller renders in full and diffs).
 */
export function serviceWeightPatch(prev: Ruleset, input: ServicesInput, only?: ReadonlySet<string>): Ruleset | undefined {
  // `only`: the Services (`ns/name`) whose weights may have changed; the others are not
  // rendered at all, which keeps one change cheap with thousands of Services.
  const partial = only !== undefined;
  const next = renderServices(partial ? { ...input, services: input.services.filter((s) => only.has(s.key)) } : input);
  const changes: ElementChange[] = [];
  // A Service that gains its first endpoint or loses its last one moves between the lookup and
  // the reject map: more than weights (the partial render shows it as an element prev lacks).
  if (partial) for (const map of [SERVICE_PORTS_MAP, SERVICE_REJECT_MAP, SERVICE_NODEPORTS_MAP, SERVICE_REJECT_NODEPORTS_MAP]) for (const e of next.sets.get(map)?.elements ?? []) if (!hasElementText(prev, map, e)) return undefined;
  for (const [name, set] of next.sets) {
    if (partial && !name.startsWith('lb_') && !name.startsWith('aff_')) continue;
    const old: NftSet | undefined = prev.sets.get(name);
    if (!old) return undefined;
    if (old.elements.join('\n') === set.elements.join('\n')) continue;
    if (!name.startsWith('lb_')) return undefined;
    const before = new Set(old.elements);
    const after = new Set(set.elements);
    for (const e of old.elements) if (!after.has(e)) changes.push({ set: name, element: parseLbElement(e), add: false });
    for (const e of set.elements) if (!before.has(e)) changes.push({ set: name, element: parseLbElement(e), add: true });
  }
  for (const [name, chain] of next.chains) {
    const old = prev.chains.get(name);
    if (!old || old.rules.join('\n') !== chain.rules.join('\n')) return undefined;
  }
  if (!partial) for (const name of prev.sets.keys()) if ((name.startsWith('lb_') || name.startsWith('aff_')) && !next.sets.has(name)) return undefined;
  return patchElements(prev, changes);
}

/** `0-899 : 10.244.1.5 . 8080` or `0-899 : goto ep_x` back to an Element (only for lb maps, which this file writes). */
function parseLbElement(text: string): Element {
  const m = /^(\d+(?:-\d+)?) : (?:goto (\S+)|(\S+ \. \d+))$/.exec(text);
  if (!m) throw new Error(`not a weight map element: ${text}`);
  return { key: [m[1]], value: m[2] !== undefined ? goto(m[2]) : m[3] };
}
