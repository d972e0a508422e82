// Endpoints as the tiers see them, and the peer test against selector-cache groups.

import type { ContainerPort, Labels, Node, Pod } from '../model/cluster.js';
import type { Group, Identity } from './cache.js';
import type { PolicyEngine, ProgramMode } from './engine.js';
import { intervalsContain, parseIp } from './ip.js';
import { evaluateDirection, evaluateVerdicts, type Decision, type DirectionVerdicts } from './pipeline.js';
import type { TierInput } from './tiers/outcome.js';
import { ALL_CONNS, intersect, type ConnSet } from './connections.js';
import { matchesSelector } from './selector.js';
import { EMPTY_PROGRAM, type Direction } from './rules.js';

export interface Endpoint {
  readonly kind: 'pod' | 'external';
  readonly identity?: Identity;
  readonly pod?: Pod;
  /** Pod IP (node IP for host-network pods) or the external address. */
  readonly ip?: bigint;
  /** Labels of the node of a host-network pod, for `nodes` peers of admin policies. */
  readonly nodeLabels?: Labels;
}

export function podEndpoint(engine: PolicyEngine, pod: Pod): Endpoint {
  const identity = engine.identityOfPod(`${pod.namespace}/${pod.name}`);
  const node = pod.node !== undefined ? engine.cache.nodes.get(pod.node) : undefined;
  const ipText = pod.ip ?? (pod.hostNetwork ? node?.ip : undefined);
  return {
    kind: 'pod',
    identity,
    pod,
    ip: ipText !== undefined ? parseIp(ipText) : undefined,
    nodeLabels: pod.hostNetwork ? (node?.labels ?? {}) : undefined,
  };
}

export function externalEndpoint(ip: bigint): Endpoint {
  return { kind: 'external', ip };
}

/**
 * Does an endpoint belong to a group? Pod selectors see only ordinary pods; CIDRs see any
 * address that is known, pods included — "an ipBlock matches a pod whose IP is known", as CNIs
 * that pass the upstream e2e suite do; node selectors see host-network endpoints.
 */
export function inGroup(group: Group, ep: Endpoint, nodes: Iterable<Node>): boolean {
  switch (group.spec.kind) {
    case 'pods':
      return ep.kind === 'pod' && ep.identity !== undefined && !ep.identity.hostNetwork && group.identities.has(ep.identity.id);
    case 'cidr':
      return ep.ip !== undefined && intervalsContain(group.spec.intervals, ep.ip);
    case 'nodes':
      if (ep.nodeLabels !== undefined) return matchesSelector(group.spec.nodeSelector, ep.nodeLabels);
      // "Nodes defines a way to select a set of nodes in the cluster": traffic to or from a
      // selected node's address is the node's, whether or not a host-network pod is modelled
      // there (the kernel matches the node IPs; the analyzer must agree).
      if (ep.kind !== 'external' || ep.ip === undefined) return false;
      for (const n of nodes) {
        if (n.ip !== undefined && parseIp(n.ip) === ep.ip && matchesSelector(group.spec.nodeSelector, n.labels)) return true;
      }
      return false;
  }
}

export function portsOf(ep: Endpoint): readonly ContainerPort[] | undefined {
  return ep.identity?.ports;
}

export interface PairResult {
  readonly egress: ConnSet;
  readonly ingress: ConnSet;
  readonly allowed: ConnSet;
}

/** What the tiers need to judge one direction between two endpoints: the subject's program, the peer's groups, the ports. */
function sideContext(engine: PolicyEngine, direction: Direction, src: Endpoint, dst: Endpoint, mode: ProgramMode, trace: Decision[] | undefined): TierInput {
  const subject = direction === 'egress' ? src : dst;
  const peer = direction === 'egress' ? dst : src;
  const program = subject.kind === 'pod' && subject.identity ? engine.program(subject.identity.id, direction, mode) : EMPTY_PROGRAM;
  return {
    program,
    inGroup: (g) => {
      const group = engine.group(g);
      return group !== undefined && inGroup(group, peer, engine.cache.nodes.values());
    },
    dstPorts: portsOf(dst),
    trace,
  };
}

/** Evaluates one direction for a pair: egress at the source, ingress at the destination. */
export function evaluateSide(
  engine: PolicyEngine,
  direction: Direction,
  src: Endpoint,
  dst: Endpoint,
  mode: ProgramMode,
  pending: ConnSet = ALL_CONNS,
  trace?: Decision[],
): ConnSet {
  return evaluateDirection(sideContext(engine, direction, src, dst, mode, trace), pending);
}

/**
 * One direction as the analyzer sees it: what is certainly allowed and what is UNKNOWN because
 * a policy in doubt applies. evaluateSide is what the data plane enforces.
 */
export function evaluateSideVerdicts(
  engine: PolicyEngine,
  direction: Direction,
  src: Endpoint,
  dst: Endpoint,
  mode: ProgramMode,
  pending: ConnSet = ALL_CONNS,
  trace?: Decision[],
  withReasons = false,
): DirectionVerdicts {
  return evaluateVerdicts(sideContext(engine, direction, src, dst, mode, trace), pending, withReasons);
}

export function evaluatePair(
  engine: PolicyEngine,
  src: Endpoint,
  dst: Endpoint,
  mode: ProgramMode = 'enforce',
  pending: ConnSet = ALL_CONNS,
): PairResult {
  const egress = evaluateSide(engine, 'egress', src, dst, mode, pending);
  const ingress = evaluateSide(engine, 'ingress', src, dst, mode, pending);
  return { egress, ingress, allowed: intersect(egress, ingress) };
}
