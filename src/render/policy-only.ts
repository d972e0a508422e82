// Policy-only mode: the policy filter beside a CNI that owns the node's networking (as
// Calico's policy-only mode and kube-router do). weir does not know what the CNI calls its
// interfaces (cali*, veth*, lxc*, …), so local pods are recognised by their addresses alone:
//
//   chain forward  (hook forward, filter)       chain host_in  (hook input, filter)
//     [unknown local pod as source: deny]         iifname "lo" accept
//     [unknown local pod as destination: deny]    fib saddr type local accept
//     ct state established,related accept        [unknown local pod as source: deny]
//     ct state invalid drop                       ct state established,related accept
//     meta nfproto ipv6 drop (counted)            ip saddr vmap @eg_id  (*)
//     ip saddr vmap @eg_id  (*)
//     goto ingress   (ip daddr vmap @in_id (*), accept; egress allows go there too)
//
//   chain host_out (hook output, filter)
//     fib saddr type local accept
//     [unknown local pod as source: deny]
//     ct state established,related accept
//     ip saddr vmap @eg_id  (*)
//
// (*) written as the filter's dispatch: `ct mark set ip saddr map @eg_pod ct mark vmap @eg_id`
//     (pod address → identity mark → identity chain; see src/render/filter.ts).
// - forward: pod to pod and pod to the outside, the same egress and ingress programs as the
//   lab's; the endpoint maps hold local pod addresses, whatever interface they sit behind.
//   An egress allow continues to the ingress stage on every hook: on input the destination
//   is the node (no pod: accepted), on output a local pod's ingress program judges a proxied
//   pod connection to it as forwarding would have.
// - input: a pod reaching its own node is subject to its egress policy (the node is judged as
//   its address, as ipBlocks and ANP `nodes` peers see it).
// - output: the node's own traffic is never filtered ("When a pod is isolated for ingress, the
//   only allowed connections into the pod are those from the pod's node and those allowed by
//   the ingress list…", NetworkPolicy concepts), so kubelet probes, the agent's own watch and
//   the API server's traffic pass; what remains on output with a pod's source address is pod
//   traffic a proxy sends on (kube-proxy in IPVS mode), which gets the pod's egress program.
// - unknown pods fail closed: an address inside the node's pod CIDRs that is not a local pod
//   the ruleset knows (a pod started before the agent synced it) is dropped and counted, as
//   the lab does for an interface it does not know. With no pod CIDRs (the operator chose to
//   let unknown pods pass), that guard is left out.
//
// Pure, like the rest of the renderer.

import { accept, end, flags, inSet, is, rule, quoted, type Rule, type RuleEnd, type Statement } from './nft.js';
import type { NftSet } from './ruleset.js';
import type { TableBuilder } from './table.js';

export interface PolicyOnlyOptions {
  /**
   * The node's pod address ranges (Node `spec.podCIDRs`, or given): an address in them that is
   * not a known local pod is a pod the agent has not synced, and fails closed. Empty: unknown
   * pods pass (an explicit choice of the operator).
   */
  readonly podCidrs: readonly string[];
  /**
   * weir programs the Service NAT itself (`weir agent --services`, no kube-proxy): connections
   * its Services masquerade (NodePort with externalTrafficPolicy Cluster, hairpin) get their
   * ingress judged after the SNAT, in postrouting, as in the lab (filter.ts). Beside kube-proxy,
   * whose SNAT weir does not see, they are judged on forward.
   */
  readonly services?: boolean;
}

/** Addresses of the local pods the ruleset knows. */
export const LOCAL_IPS_SET = 'local_ips';
/** The node's pod address ranges. */
export const POD_CIDRS_SET = 'pod_cidrs';
export const HOST_IN_CHAIN = 'host_in';
export const HOST_OUT_CHAIN = 'host_out';

export interface PolicyOnlyParts {
  /** The filter's base chain on the forward hook. */
  readonly forwardChain: string;
  /** Counts and drops forwarded IPv6 (the ruleset matches IPv4). */
  readonly v6: Statement;
  /** The deny point for a pod the agent does not know (undefined: unknown pods pass). */
  readonly notReady: RuleEnd | undefined;
  readonly localIps: readonly string[];
  /** Drops an untracked packet of a local pod (by `key`): it has no ct mark to dispatch on. */
  readonly untracked: (key: 'ip saddr' | 'ip daddr') => Rule;
  /** The source's egress program (pod → identity mark → chain, jumped to). */
  readonly egressDispatch: Rule;
  /** On to the ingress stage (the destination's program, then accept). */
  readonly toIngress: Rule;
}

const ipSet = (name: string, elements: readonly string[], interval: boolean): NftSet => ({
  name,
  kind: 'set',
  type: 'ipv4_addr',
  flags: interval ? ['interval'] : [],
  extra: [],
  dynamic: false,
  elements: [...new Set(elements)].sort(),
});

/** Declares the policy-only sets and base chains (the maps and the deny chain are the filter's). */
export function policyOnlyBaseChains(t: TableBuilder, opts: PolicyOnlyOptions, parts: PolicyOnlyParts): void {
  t.set({ ...ipSet(LOCAL_IPS_SET, parts.localIps, false), hot: true });
  const guard = opts.podCidrs.length > 0 && parts.notReady !== undefined;
  if (guard) t.set(ipSet(POD_CIDRS_SET, opts.podCidrs, true));
  const unknown = (field: 'ip saddr' | 'ip daddr'): Rule[] => (guard && parts.notReady ? [rule([inSet(field, POD_CIDRS_SET), inSet(field, LOCAL_IPS_SET, true)], parts.notReady)] : []);
  const established = rule([flags('ct state', 'established', 'related')], end(accept));
  const invalid = rule([flags('ct state', 'invalid')], end({ kind: 'drop' }));
  const own = rule([is('fib saddr type', 'local')], end(accept));
  const hook = (h: string, priority: string): string => `type filter hook ${h} priority ${priority}; policy accept;`;
  const egress = [parts.untracked('ip saddr'), parts.egressDispatch];
  t.chain(
    parts.forwardChain,
    [...unknown('ip saddr'), ...unknown('ip daddr'), established, invalid, rule([is('meta nfproto', 'ipv6')], end({ kind: 'drop' }, parts.v6)), parts.untracked('ip saddr'), parts.untracked('ip daddr'), parts.egressDispatch, parts.toIngress],
    hook('forward', 'filter'),
  );
  t.chain(HOST_IN_CHAIN, [rule([is('iifname', quoted('lo'))], end(accept)), own, ...unknown('ip saddr'), established, ...egress], hook('input', 'filter'));
  t.chain(HOST_OUT_CHAIN, [own, ...unknown('ip saddr'), established, ...egress], hook('output', 'filter'));
}
