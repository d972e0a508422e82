// The lab's network, as `ip`/`bridge`/`sysctl` commands, applied per namespace with
// `ip -n <netns> -batch -` (one exec per namespace instead of one per command).
//
// Shape (every object lives in a lab namespace; the root namespace is never touched):
//
//   underlay ns:  br0 ── n0 ┄┄ eth0 (node 0 ns, 172.31.255.10/24) ── vxlan0 (10.244.0.0/32, vni 42)
//                  └──── n1 ┄┄ eth0 (node 1 ns, 172.31.255.11/24) ── vxlan0 (10.244.1.0/32)
//   node ns:      wp<hash> ┄┄ eth0 (pod ns, 10.244.i.n/32, default via 169.254.1.1 onlink)
//   node 0 ns:    wext (203.0.113.1/24) ┄┄ eth0 (external ns, 203.0.113.10/24)
//
// Routed pods without a bridge, as Calico does: the pod's only route is a link-local
// gateway whose neighbour entry is pinned to the host veth MAC (ee:ee:ee:ee:ee:ee, with
// proxy_arp on as well), and the node holds a /32 route to each local pod. Between nodes,
// flannel-style VXLAN: each node routes every other node's pod CIDR via that node's VTEP
// address (`.0` of the CIDR) onlink, with static neighbour and FDB entries — no learning, no
// multicast, and nothing to converge, so the overlay works the moment it is written.
// Pods whose address lies outside their node's CIDR (explicit IPs, namespace pools) get a
// /32 route via their node's VTEP on every other node.
//
// Traffic to and from the external host crosses the overlay to node 0 in both directions,
// so every node sees both halves of each connection (conntrack stays symmetric).

import { contains, labCidr, ipv4Number } from './cidr.js';
import { ipBatch, run } from '../exec/run.js';
import { HOST_VETH_MAC, underlayPortName } from './names.js';
import type { LabNode, LabPod, LabState } from './state.js';

const CONCURRENCY = 16;

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export async function listNetns(): Promise<Set<string>> {
  const { stdout } = await run(['ip', 'netns', 'list']);
  return new Set(stdout.split('\n').map((l) => l.trim().split(/\s+/)[0] ?? '').filter((n) => n.length > 0));
}

export async function addNetns(names: readonly string[]): Promise<void> {
  await ipBatch(names.map((n) => `netns add ${n}`));
}

/** Deletes namespaces one batch per call; missing ones are ignored (`-force` keeps going). */
export async function deleteNetns(names: readonly string[]): Promise<void> {
  if (names.length === 0) return;
  await run(['ip', '-force', '-batch', '-'], { input: `${names.map((n) => `netns del ${n}`).join('\n')}\n`, allowFailure: true });
}

/** PIDs of processes whose network namespace is `netns`. */
export async function netnsPids(netns: string): Promise<number[]> {
  const { stdout } = await run(['ip', 'netns', 'pids', netns], { allowFailure: true });
  return stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

function sysctl(netns: string, settings: Readonly<Record<string, string | number>>): Promise<unknown> {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  return run(['ip', 'netns', 'exec', netns, 'sysctl', '-q', '-w', ...args]);
}

export function allNetns(state: LabState): string[] {
  return [state.underlay.netns, ...state.nodes.map((n) => n.netns), state.external.netns, ...state.pods.map((p) => p.netns)];
}

function nodeByName(state: LabState, name: string): LabNode {
  const node = state.nodes.find((n) => n.name === name);
  if (!node) throw new Error(`lab state has no node "${name}"`);
  return node;
}

function inOwnPool(state: LabState, pod: LabPod): boolean {
  const cidr = labCidr(nodeByName(state, pod.node).podCidr);
  const ip = ipv4Number(pod.ip);
  return cidr !== undefined && ip !== undefined && contains(cidr, ip);
}

// ------------------------------------------------------------------ command builders

export function underlayCommands(state: LabState): string[] {
  const br = state.underlay.bridge;
  const lines = ['link set lo up', `link add ${br} type bridge`, `link set ${br} up`];
  for (const node of state.nodes) {
    const port = underlayPortName(node.index);
    lines.push(`link add ${port} type veth peer name ${node.underlayDev} netns ${node.netns}`, `link set ${port} master ${br}`, `link set ${port} up`);
  }
  return lines;
}

export function nodeCommands(state: LabState, node: LabNode): { ip: string[]; fdb: string[] } {
  const { vni, vxlanPort, mtu } = state.network;
  const underlayBits = state.network.underlayCidr.split('/')[1];
  const ip = [
    'link set lo up',
    `addr add ${node.underlayIp}/${underlayBits} dev ${node.underlayDev}`,
    `link set ${node.underlayDev} up`,
    `link add ${node.vxlanDev} address ${node.vtepMac} mtu ${mtu} type vxlan id ${vni} local ${node.underlayIp} dev ${node.underlayDev} dstport ${vxlanPort} nolearning`,
    `addr add ${node.vtepIp}/32 dev ${node.vxlanDev}`,
    `link set ${node.vxlanDev} up`,
  ];
  const fdb: string[] = [];
  for (const other of state.nodes) {
    if (other.index === node.index) continue;
    ip.push(
      `neigh replace ${other.vtepIp} lladdr ${other.vtepMac} dev ${node.vxlanDev} nud permanent`,
      `route add ${other.podCidr} via ${other.vtepIp} dev ${node.vxlanDev} onlink`,
    );
    fdb.push(`fdb append ${other.vtepMac} dev ${node.vxlanDev} dst ${other.underlayIp}`);
  }
  const ext = state.external;
  if (ext.node === node.name) {
    const bits = ext.cidr.split('/')[1];
    ip.push(
      `link add ${ext.hostVeth} mtu ${mtu} type veth peer name eth0 mtu ${mtu} netns ${ext.netns}`,
      `addr add ${ext.gateway}/${bits} dev ${ext.hostVeth}`,
      `link set ${ext.hostVeth} up`,
    );
  } else {
    const extNode = nodeByName(state, ext.node);
    ip.push(`route add ${ext.cidr} via ${extNode.vtepIp} dev ${node.vxlanDev} onlink`);
  }
  return { ip, fdb };
}

export function externalCommands(state: LabState): string[] {
  const ext = state.external;
  const bits = ext.cidr.split('/')[1];
  return ['link set lo up', `addr add ${ext.ip}/${bits} dev eth0`, 'link set eth0 up', `route add default via ${ext.gateway} dev eth0`];
}

/** Node-side commands for pods on `node`: veth pairs into the pod namespaces and /32 routes. */
export function podHostCommands(state: LabState, pods: readonly LabPod[]): string[] {
  const mtu = state.network.mtu;
  return pods.flatMap((pod) => [
    `link add ${pod.hostVeth} address ${HOST_VETH_MAC} mtu ${mtu} type veth peer name ${pod.dev} mtu ${mtu} netns ${pod.netns}`,
    `link set ${pod.hostVeth} up`,
    `route replace ${pod.ip}/32 dev ${pod.hostVeth} scope link`,
  ]);
}

export function podCommands(state: LabState, pod: LabPod): string[] {
  const gw = state.network.podGateway;
  return [
    'link set lo up',
    `addr add ${pod.ip}/32 dev ${pod.dev}`,
    `link set ${pod.dev} up`,
    `route add ${gw} dev ${pod.dev} scope link`,
    `neigh replace ${gw} lladdr ${HOST_VETH_MAC} dev ${pod.dev} nud permanent`,
    `route add default via ${gw} dev ${pod.dev} onlink`,
  ];
}

/** Routes other nodes need for pods whose address is outside their node's CIDR. */
export function remotePodRoutes(state: LabState, pods: readonly LabPod[], verb: 'replace' | 'del'): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const pod of pods) {
    if (inOwnPool(state, pod)) continue;
    const home = nodeByName(state, pod.node);
    for (const node of state.nodes) {
      if (node.name === pod.node) continue;
      const lines = out.get(node.netns) ?? [];
      lines.push(verb === 'del' ? `route del ${pod.ip}/32` : `route replace ${pod.ip}/32 via ${home.vtepIp} dev ${node.vxlanDev} onlink`);
      out.set(node.netns, lines);
    }
  }
  return out;
}

// ------------------------------------------------------------------------ appliers

/** Creates underlay, nodes and the external host (namespaces must already exist). */
export async function buildInfrastructure(state: LabState): Promise<void> {
  // Node sysctls first, so pod veths created later inherit the `default` settings.
  // rp_filter off: replies to the external host legitimately come back over the overlay.
  await Promise.all(
    state.nodes.map((n) =>
      sysctl(n.netns, {
        'net.ipv4.ip_forward': 1,
        'net.ipv4.conf.all.rp_filter': 0,
        'net.ipv4.conf.default.rp_filter': 0,
        'net.ipv4.conf.default.proxy_arp': 1,
        'net.ipv6.conf.all.disable_ipv6': 1,
        'net.ipv6.conf.default.disable_ipv6': 1,
      }),
    ),
  );
  await ipBatch(underlayCommands(state), state.underlay.netns);
  await Promise.all(
    state.nodes.map(async (n) => {
      const cmds = nodeCommands(state, n);
      await ipBatch(cmds.ip, n.netns);
      await ipBatch(cmds.fdb, n.netns, 'bridge');
    }),
  );
  await ipBatch(externalCommands(state), state.external.netns);
}

/** Wires `pods` (their namespaces must exist) into their nodes. */
export async function attachPods(state: LabState, pods: readonly LabPod[]): Promise<void> {
  await Promise.all(
    state.nodes.map((node) =>
      ipBatch(
        podHostCommands(
          state,
          pods.filter((p) => p.node === node.name),
        ),
        node.netns,
      ),
    ),
  );
  await forEachLimit(pods, CONCURRENCY, (pod) => ipBatch(podCommands(state, pod), pod.netns));
  await Promise.all([...remotePodRoutes(state, pods, 'replace')].map(([netns, lines]) => ipBatch(lines, netns)));
}

/** Unwires one pod: remote routes and its namespace (which takes the veth pair with it). */
export async function detachPod(state: LabState, pod: LabPod): Promise<void> {
  await Promise.all([...remotePodRoutes(state, [pod], 'del')].map(([netns, lines]) => run(['ip', '-n', netns, '-force', '-batch', '-'], { input: `${lines.join('\n')}\n`, allowFailure: true })));
  await deleteNetns([pod.netns]);
}
