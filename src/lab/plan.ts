// Pure planning: from a Cluster (and the previous state, if any) to the complete lab state,
// or diagnostics saying why the lab cannot realise the manifests. Nothing here touches the
// system, so every check runs before the first namespace is created.

import { type Cluster, type ContainerPort, type Pod, materializeReplicas } from '../model/cluster.js';
import { type Diagnostic, ValidationError, hasErrors, objectName } from '../model/diagnostics.js';
import { type Cidr, contains, formatCidr, formatIPv4, overlaps, labCidr, ipv4Number, size, subnet } from './cidr.js';
import {
  DEFAULT_PREFIX,
  EXTERNAL_HOST_VETH,
  POD_DEV,
  POD_GATEWAY,
  UNDERLAY_BRIDGE,
  UNDERLAY_DEV,
  VXLAN_DEV,
  defaultLabDir,
  hostVethName,
  isValidPrefix,
  netnsNames,
  podHash,
  podKey,
  vtepMac,
} from './names.js';
import type { LabExternal, LabNode, LabPod, LabPort, LabState } from './state.js';

export interface LabPlanOptions {
  /** Number of emulated nodes (default: the declared nodes, at least 2). */
  readonly nodes?: number;
  /** Instance prefix for namespace names (default `weir-`). */
  readonly prefix?: string;
  /** Lab directory holding the state file (default WEIR_LAB_DIR or /run/weir/lab). */
  readonly dir?: string;
  /** Pod address space, split into one pool per node (default 10.244.0.0/16). */
  readonly clusterCidr?: string;
  /** Prefix length of each node's pool (default 24). */
  readonly nodeCidrBits?: number;
  /** Per-namespace pools, `{ namespace: cidr }`; pods of those namespaces ignore node pools. */
  readonly namespacePools?: Readonly<Record<string, string>>;
}

export const LAB_DEFAULTS = {
  nodes: 2,
  clusterCidr: '10.244.0.0/16',
  nodeCidrBits: 24,
  /** Private range that exists only inside the lab's namespaces. */
  underlayCidr: '172.31.255.0/24',
  underlayHostOffset: 10,
  /** TEST-NET-3 (RFC 5737): documentation range, never routed anywhere real. */
  externalCidr: '203.0.113.0/24',
  externalIp: '203.0.113.10',
  externalGateway: '203.0.113.1',
  vni: 42,
  vxlanPort: 4789,
  /** 1500 minus the 50 bytes of VXLAN-over-IPv4 encapsulation. */
  mtu: 1450,
  maxNodes: 64,
} as const;

const LINK_LOCAL: Cidr = { base: ipv4Number('169.254.0.0') ?? 0, bits: 16 };
const EXTERNAL_PORTS: LabPort[] = [80, 443].flatMap((port) => [
  { port, protocol: 'TCP' as const },
  { port, protocol: 'UDP' as const },
]);

export interface LabPlan {
  readonly state: LabState;
  readonly diagnostics: readonly Diagnostic[];
}

function err(code: string, message: string, object?: string, field?: string): Diagnostic {
  return { severity: 'error', code, message, object, field };
}

function podObject(pod: Pod): string {
  return objectName('Pod', pod.name, pod.namespace);
}

/** Ports the lab can serve: TCP and UDP, each (port, protocol) once. */
export function servedPorts(ports: readonly ContainerPort[]): LabPort[] {
  const seen = new Set<string>();
  const out: LabPort[] = [];
  for (const p of ports) {
    if (p.protocol === 'SCTP') continue;
    const id = `${p.port}/${p.protocol}`;
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(p.name === undefined ? { port: p.port, protocol: p.protocol } : { ...p });
  }
  return out;
}

/** Per-pod checks that do not depend on the address plan. */
export function podDiagnostics(pod: Pod): Diagnostic[] {
  const out: Diagnostic[] = [];
  const obj = podObject(pod);
  if (pod.hostNetwork) {
    out.push({
      severity: 'warning',
      code: 'lab-host-network-unsupported',
      message: 'hostNetwork pods are not emulated by the lab; the pod is not created and is absent from probes',
      object: obj,
      field: 'spec.hostNetwork',
    });
    return out;
  }
  if (pod.ports.length === 0) {
    out.push({
      severity: 'warning',
      code: 'lab-pod-without-ports',
      message: 'pod declares no container ports: it gets an address but no server, so probes to it fail',
      object: obj,
      field: 'spec.containers[].ports',
    });
  }
  for (const p of pod.ports) {
    if (p.protocol === 'SCTP') {
      out.push({
        severity: 'notice',
        code: 'lab-sctp-skipped',
        message: `port ${p.port}/SCTP is not served: this kernel has no SCTP (the analyzer still checks it)`,
        object: obj,
        field: 'spec.containers[].ports',
      });
    }
  }
  return out;
}

interface PoolState {
  readonly cidr: Cidr;
  readonly label: string;
}

/** First and last usable host address: the `.0` of a node pool is its VTEP, the last is broadcast. */
function usable(pool: Cidr): { first: number; last: number } {
  if (pool.bits >= 31) return { first: pool.base, last: pool.base + size(pool) - 1 };
  return { first: pool.base + 1, last: pool.base + size(pool) - 2 };
}

/** The most pods a lab runs: each is a network namespace with a server process. */
export const LAB_MAX_PODS = 4096;

/** The model keeps one pod per replicated workload with a count; the lab runs every replica. */
export function replicasOf(pods: readonly Pod[]): Pod[] {
  try {
    return materializeReplicas(pods, LAB_MAX_PODS);
  } catch (e) {
    if (!(e instanceof RangeError)) throw e;
    throw new ValidationError([err('lab-too-many-pods', `the lab runs at most ${LAB_MAX_PODS} pods: ${e.message}`)]);
  }
}

/** The address spaces of a plan: the cluster CIDR split into node pools, and namespace pools. */
interface AddressSpaces {
  readonly clusterCidr: Cidr;
  readonly clusterCidrText: string;
  readonly nodeBits: number;
  readonly nsPools: ReadonlyMap<string, Cidr>;
}

/** Pass 0: the cluster CIDR and namespace pools, each checked against the lab's fixed networks and each other. */
function planAddressSpaces(opts: LabPlanOptions, previous: LabState | undefined, diags: Diagnostic[]): AddressSpaces {
  const clusterCidrText = opts.clusterCidr ?? previous?.network.clusterCidr ?? LAB_DEFAULTS.clusterCidr;
  const nodeBits = opts.nodeCidrBits ?? LAB_DEFAULTS.nodeCidrBits;
  const clusterCidr = labCidr(clusterCidrText);
  const underlay = labCidr(LAB_DEFAULTS.underlayCidr) as Cidr;
  const external = labCidr(LAB_DEFAULTS.externalCidr) as Cidr;
  if (!clusterCidr) {
    throw new ValidationError([err('lab-invalid-cidr', `cluster CIDR "${clusterCidrText}" is not an IPv4 network (a.b.c.d/n)`)]);
  }
  for (const [what, other] of [
    ['the underlay network', underlay],
    ['the external network', external],
    ['link-local 169.254.0.0/16 (pod gateway)', LINK_LOCAL],
  ] as const) {
    if (overlaps(clusterCidr, other)) {
      diags.push(err('lab-cidr-clash', `cluster CIDR ${clusterCidrText} overlaps ${what} ${formatCidr(other)}`));
    }
  }
  const nsPools = new Map<string, Cidr>();
  const nsPoolText = opts.namespacePools ?? previous?.namespacePools ?? {};
  for (const [ns, text] of Object.entries(nsPoolText)) {
    const c = labCidr(text);
    if (!c) {
      diags.push(err('lab-invalid-cidr', `namespace pool "${text}" is not an IPv4 network (a.b.c.d/n)`, objectName('Namespace', ns)));
      continue;
    }
    for (const [what, other] of [
      ['the cluster CIDR', clusterCidr],
      ['the underlay network', underlay],
      ['the external network', external],
      ['link-local 169.254.0.0/16', LINK_LOCAL],
      ...[...nsPools].map(([n, o]) => [`the pool of namespace ${n}`, o] as const),
    ] as const) {
      if (overlaps(c, other)) diags.push(err('lab-cidr-clash', `namespace pool ${text} overlaps ${what} ${formatCidr(other)}`, objectName('Namespace', ns)));
    }
    nsPools.set(ns, c);
  }
  return { clusterCidr, clusterCidrText, nodeBits, nsPools };
}

/** Pass 1: the nodes — the declared ones first, then `node-<i>` up to the count — each with its pool. */
function planNodes(cluster: Cluster, opts: LabPlanOptions, spaces: AddressSpaces, prefix: string, diags: Diagnostic[]): LabNode[] {
  const declared = cluster.nodes;
  const nodeCount = opts.nodes ?? Math.max(declared.length, LAB_DEFAULTS.nodes);
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > LAB_DEFAULTS.maxNodes) {
    throw new ValidationError([err('lab-invalid-node-count', `node count must be between 1 and ${LAB_DEFAULTS.maxNodes}, got ${nodeCount}`)]);
  }
  if (nodeCount < declared.length) {
    diags.push(err('lab-too-few-nodes', `the manifests declare ${declared.length} nodes but the lab was asked for ${nodeCount}`));
  }
  const underlay = labCidr(LAB_DEFAULTS.underlayCidr) as Cidr;
  const nodes: LabNode[] = [];
  const usedNames = new Set(declared.map((n) => n.name));
  for (let i = 0; i < nodeCount; i++) {
    const decl = declared[i];
    let name = decl?.name ?? `node-${i}`;
    if (!decl) {
      for (let n = i; usedNames.has(name) && n < i + nodeCount + declared.length; n++) name = `node-${n + 1}`;
      usedNames.add(name);
    }
    const pool = subnet(spaces.clusterCidr, spaces.nodeBits, i);
    if (!pool) {
      diags.push(err('lab-cidr-too-small', `cluster CIDR ${spaces.clusterCidrText} has no room for a /${spaces.nodeBits} pool for node ${i}`));
      continue;
    }
    nodes.push({
      name,
      index: i,
      labels: { ...(decl?.labels ?? {}), 'kubernetes.io/hostname': name },
      netns: netnsNames.node(prefix, i),
      underlayIp: formatIPv4(underlay.base + LAB_DEFAULTS.underlayHostOffset + i),
      underlayDev: UNDERLAY_DEV,
      vxlanDev: VXLAN_DEV,
      vtepIp: formatIPv4(pool.base),
      vtepMac: vtepMac(i),
      podCidr: formatCidr(pool),
    });
  }
  return nodes;
}

/** Pass 2: the pods the lab emulates (no duplicates, no host network, known nodes), sorted by key. */
function collectPods(cluster: Cluster, nodes: readonly LabNode[], diags: Diagnostic[]): Pod[] {
  const nodeNames = new Set(nodes.map((n) => n.name));
  const seen = new Set<string>();
  const hashes = new Map<string, string>();
  const pods: Pod[] = [];
  for (const pod of replicasOf(cluster.pods)) {
    const key = podKey(pod.namespace, pod.name);
    if (seen.has(key)) {
      diags.push(err('lab-duplicate-pod', `pod ${key} is declared more than once`, podObject(pod), 'metadata.name'));
      continue;
    }
    seen.add(key);
    diags.push(...podDiagnostics(pod));
    if (pod.hostNetwork) continue;
    const h = podHash(key);
    const clash = hashes.get(h);
    if (clash) {
      diags.push(err('lab-name-hash-clash', `pods ${clash} and ${key} hash to the same lab name; rename one of them`, podObject(pod)));
    }
    hashes.set(h, key);
    if (pod.node !== undefined && !nodeNames.has(pod.node)) {
      diags.push(err('lab-unknown-node', `pod is bound to node "${pod.node}" but the lab has nodes ${nodes.map((n) => n.name).join(', ')}`, podObject(pod), 'spec.nodeName'));
    }
    pods.push(pod);
  }
  return pods.sort((a, b) => podKey(a.namespace, a.name).localeCompare(podKey(b.namespace, b.name)));
}

/** What the address passes share: pools, and the addresses taken so far (address → pod key). */
interface AddressBook {
  readonly nodes: readonly LabNode[];
  readonly nodePools: readonly Cidr[];
  readonly nsPools: ReadonlyMap<string, Cidr>;
  readonly usedIps: Map<number, string>;
}

/** Pass 3: explicit addresses are honoured first, so automatic ones never take them. */
function claimExplicitIps(pods: readonly Pod[], book: AddressBook, diags: Diagnostic[]): Map<string, number> {
  const allPools: Cidr[] = [...book.nodePools, ...book.nsPools.values()];
  const explicitIp = new Map<string, number>();
  for (const pod of pods) {
    if (pod.ip === undefined) continue;
    const key = podKey(pod.namespace, pod.name);
    const ip = ipv4Number(pod.ip);
    if (ip === undefined) {
      diags.push(err('lab-invalid-pod-ip', `pod IP "${pod.ip}" is not an IPv4 address`, podObject(pod), 'status.podIP'));
      continue;
    }
    const pool = allPools.find((c) => contains(c, ip));
    if (!pool) {
      const pools = [...book.nodes.map((n) => n.podCidr), ...[...book.nsPools.values()].map(formatCidr)].join(', ');
      diags.push(err('lab-pod-ip-outside-pools', `pod IP ${pod.ip} is outside the lab's pools (${pools})`, podObject(pod), 'status.podIP'));
      continue;
    }
    const { first, last } = usable(pool);
    if (ip < first || ip > last) {
      diags.push(err('lab-pod-ip-reserved', `pod IP ${pod.ip} is reserved in ${formatCidr(pool)} (network/VTEP or broadcast address)`, podObject(pod), 'status.podIP'));
      continue;
    }
    const owner = book.usedIps.get(ip);
    if (owner) {
      diags.push(err('lab-pod-ip-clash', `pod IP ${pod.ip} is also the IP of pod ${owner}`, podObject(pod), 'status.podIP'));
      continue;
    }
    book.usedIps.set(ip, key);
    explicitIp.set(key, ip);
  }
  return explicitIp;
}

/**
 * Pass 4: nodes. Bound pods first (nodeName, then the node whose pool holds the explicit IP,
 * then the node of the previous run); the rest go to the least-loaded node, lowest index
 * first — round-robin when nothing is bound, and stable for a given pod list.
 */
function placePods(pods: readonly Pod[], book: AddressBook, explicitIp: ReadonlyMap<string, number>, prevPods: ReadonlyMap<string, LabPod>): Map<string, number> {
  const nodeByName = new Map(book.nodes.map((n) => [n.name, n]));
  const nodeOf = new Map<string, number>();
  const load = book.nodes.map(() => 0);
  for (const pod of pods) {
    const key = podKey(pod.namespace, pod.name);
    let idx: number | undefined;
    if (pod.node !== undefined) idx = nodeByName.get(pod.node)?.index;
    const ip = explicitIp.get(key);
    if (idx === undefined && ip !== undefined && !book.nsPools.has(pod.namespace)) {
      const i = book.nodePools.findIndex((c) => contains(c, ip));
      if (i >= 0) idx = i;
    }
    const prev = prevPods.get(key);
    if (idx === undefined && prev) idx = nodeByName.get(prev.node)?.index;
    if (idx !== undefined) {
      nodeOf.set(key, idx);
      load[idx] = (load[idx] ?? 0) + 1;
    }
  }
  for (const pod of pods) {
    const key = podKey(pod.namespace, pod.name);
    if (nodeOf.has(key)) continue;
    let best = 0;
    for (let i = 1; i < load.length; i++) if ((load[i] ?? 0) < (load[best] ?? 0)) best = i;
    nodeOf.set(key, best);
    load[best] = (load[best] ?? 0) + 1;
  }
  return nodeOf;
}

/**
 * Pass 5: addresses. The previous run's address is kept when it is still free and in the
 * pod's pool; otherwise the lowest free address of the pool.
 */
function assignAddresses(
  pods: readonly Pod[],
  book: AddressBook,
  explicitIp: ReadonlyMap<string, number>,
  nodeOf: ReadonlyMap<string, number>,
  prevPods: ReadonlyMap<string, LabPod>,
  diags: Diagnostic[],
): Map<string, number> {
  const poolFor = (pod: Pod, nodeIndex: number): PoolState => {
    const ns = book.nsPools.get(pod.namespace);
    if (ns) return { cidr: ns, label: `namespace ${pod.namespace} pool ${formatCidr(ns)}` };
    return { cidr: book.nodePools[nodeIndex] as Cidr, label: `node ${book.nodes[nodeIndex]?.name} pool ${book.nodes[nodeIndex]?.podCidr}` };
  };
  const ipOf = new Map<string, number>(explicitIp);
  for (const pod of pods) {
    const key = podKey(pod.namespace, pod.name);
    if (ipOf.has(key)) continue;
    const prev = ipv4Number(prevPods.get(key)?.ip ?? '');
    const pool = poolFor(pod, nodeOf.get(key) ?? 0).cidr;
    const { first, last } = usable(pool);
    if (prev !== undefined && prev >= first && prev <= last && !book.usedIps.has(prev)) {
      book.usedIps.set(prev, key);
      ipOf.set(key, prev);
    }
  }
  const cursor = new Map<string, number>();
  for (const pod of pods) {
    const key = podKey(pod.namespace, pod.name);
    if (ipOf.has(key)) continue;
    const pool = poolFor(pod, nodeOf.get(key) ?? 0);
    const { first, last } = usable(pool.cidr);
    let ip = cursor.get(pool.label) ?? first;
    while (ip <= last && book.usedIps.has(ip)) ip++;
    cursor.set(pool.label, ip);
    if (ip > last) {
      diags.push(err('lab-pool-exhausted', `no free address left in ${pool.label} (${last - first + 1} usable addresses)`, podObject(pod)));
      continue;
    }
    book.usedIps.set(ip, key);
    ipOf.set(key, ip);
  }
  return ipOf;
}

function labPodOf(pod: Pod, node: LabNode, ip: number, prefix: string): LabPod {
  const key = podKey(pod.namespace, pod.name);
  return {
    key,
    namespace: pod.namespace,
    name: pod.name,
    labels: { ...pod.labels },
    workload: pod.workload,
    ip: formatIPv4(ip),
    node: node.name,
    netns: netnsNames.pod(prefix, key),
    dev: POD_DEV,
    hostVeth: hostVethName(key),
    ports: pod.ports.map((p) => ({ ...p })),
    served: servedPorts(pod.ports),
  };
}

function externalHost(node0: LabNode, prefix: string): LabExternal {
  return {
    name: 'external',
    netns: netnsNames.external(prefix),
    ip: LAB_DEFAULTS.externalIp,
    cidr: LAB_DEFAULTS.externalCidr,
    gateway: LAB_DEFAULTS.externalGateway,
    node: node0.name,
    hostVeth: EXTERNAL_HOST_VETH,
    served: EXTERNAL_PORTS.map((p) => ({ ...p })),
  };
}

/**
 * Plans the lab. `previous` is the state left by an earlier `lab up` on the same directory:
 * pods keep their node and address from it, so a restart does not renumber anything. The
 * passes run in order; each adds its diagnostics, and errors stop the plan where later passes
 * would only repeat them (after the nodes, and at the end).
 */
export function planLab(cluster: Cluster, opts: LabPlanOptions = {}, previous?: LabState): LabPlan {
  const diags: Diagnostic[] = [];
  const prefix = opts.prefix ?? previous?.prefix ?? DEFAULT_PREFIX;
  if (!isValidPrefix(prefix)) {
    throw new ValidationError([
      err('lab-invalid-prefix', `lab prefix "${prefix}" must be lowercase letters, digits and dashes, end with "-" and be at most 16 characters`),
    ]);
  }
  const dir = opts.dir ?? previous?.dir ?? defaultLabDir(prefix);
  const spaces = planAddressSpaces(opts, previous, diags);
  const nodes = planNodes(cluster, opts, spaces, prefix, diags);
  if (hasErrors(diags)) throw new ValidationError(diags);
  const pods = collectPods(cluster, nodes, diags);
  const book: AddressBook = { nodes, nodePools: nodes.map((n) => labCidr(n.podCidr) as Cidr), nsPools: spaces.nsPools, usedIps: new Map() };
  const prevPods = new Map((previous?.pods ?? []).map((p) => [p.key, p]));
  const explicitIp = claimExplicitIps(pods, book, diags);
  const nodeOf = placePods(pods, book, explicitIp, prevPods);
  const ipOf = assignAddresses(pods, book, explicitIp, nodeOf, prevPods, diags);
  if (hasErrors(diags)) throw new ValidationError(diags);

  const labPods = pods.map((pod) => {
    const key = podKey(pod.namespace, pod.name);
    return labPodOf(pod, nodes[nodeOf.get(key) ?? 0] as LabNode, ipOf.get(key) ?? 0, prefix);
  });
  const state: LabState = {
    version: 1,
    prefix,
    dir,
    status: 'starting',
    updatedAt: new Date().toISOString(),
    network: {
      clusterCidr: formatCidr(spaces.clusterCidr),
      underlayCidr: LAB_DEFAULTS.underlayCidr,
      externalCidr: LAB_DEFAULTS.externalCidr,
      vni: LAB_DEFAULTS.vni,
      vxlanPort: LAB_DEFAULTS.vxlanPort,
      mtu: LAB_DEFAULTS.mtu,
      podGateway: POD_GATEWAY,
    },
    namespacePools: Object.fromEntries([...spaces.nsPools].map(([ns, c]) => [ns, formatCidr(c)])),
    underlay: { netns: netnsNames.underlay(prefix), bridge: UNDERLAY_BRIDGE },
    namespaces: cluster.namespaces.map((n) => ({ name: n.name, labels: { ...n.labels } })),
    nodes,
    pods: labPods,
    external: externalHost(nodes[0] as LabNode, prefix),
  };
  return { state, diagnostics: diags };
}
