// `weir lab probe --compare` for Services: each probed Service cell against the analyzer.
//
// A probe makes one connection; the kernel translates it to one endpoint (weighted random)
// and the policy filter judges it there — the real pod and target port. So, per cell, with
// the endpoints the client's node may use (traffic policies Local narrow them):
//
//   - no endpoint:                           expected not reachable (rejected at once);
//   - every endpoint allowed (and served):   expected reachable, and the answer must come from
//                                            one of those endpoints;
//   - no endpoint allowed and served:        expected not reachable;
//   - some allowed, some not (partial):      when it answered, the answer must come from an
//                                            allowed endpoint (a denied one answering is a
//                                            disagreement); when it did not, the connection
//                                            may have gone to a denied endpoint: not compared.
//
// Which source an endpoint's ingress policy judges (src/render/services.ts masquerades as
// kube-proxy does, and the filter judges a masqueraded connection's ingress after SNAT):
//   - a NodePort with externalTrafficPolicy Cluster, entered on node N: N's address, whichever
//     node the endpoint is on (the external client's address is gone); the client's egress is
//     not judged (it is outside the cluster);
//   - a NodePort with externalTrafficPolicy Local: the external client itself (no masquerade;
//     only N's own endpoints, none → dropped);
//   - a pod sent to itself through its Service (hairpin): its egress is judged with its own
//     address, its ingress with its node's (masqueraded);
//   - every other ClusterIP connection: the client pod, both directions.
//
// "Allowed" is the engine's enforced verdict (what the agents program), the same as for pod
// cells. Pure: plain data in, plain data out.

import type { ResolvedService } from '../lb/endpoints.js';
import { endpointsForNode } from '../lb/endpoints.js';
import { allows, evaluatePair, externalEndpoint, parseIp, podEndpoint, type Endpoint, type PolicyEngine, type Verdict } from '../policy/index.js';
import { EXTERNAL_PEER, type ProbeCell, type ProbeResult } from './probe.js';
import type { ServiceProbeTarget } from './probe-services.js';
import type { LabState } from './state.js';

export type ServiceExpectation = 'Allowed' | 'Denied' | 'Partial';
export type ServiceSkip = 'partial-no-answer';

export interface ComparedServiceEndpoint {
  /** `ns/pod` (or `ip:port` when no lab pod has the address). */
  readonly pod: string;
  readonly port: number;
  readonly verdict: Verdict;
  /** The lab serves that port on that pod. */
  readonly served: boolean;
  /** The source address the endpoint's ingress policy judges, when it is not the client's (masquerade). */
  readonly seenAs?: string;
}

export interface ComparedServiceCell {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: ProbeCell['protocol'];
  readonly expected: ServiceExpectation;
  readonly observed: 'Allowed' | 'Denied';
  /** The endpoint that answered. */
  readonly reply?: string;
  readonly error?: string;
  readonly endpoints: readonly ComparedServiceEndpoint[];
  readonly skipped?: ServiceSkip;
  readonly disagrees: boolean;
  /** Why it disagrees, in words. */
  readonly why?: string;
}

export interface ServiceComparison {
  readonly cells: readonly ComparedServiceCell[];
  readonly compared: number;
  readonly disagreements: readonly ComparedServiceCell[];
}

export function compareServiceProbe(
  engine: PolicyEngine,
  state: LabState,
  services: readonly ResolvedService[],
  targets: readonly ServiceProbeTarget[],
  result: ProbeResult,
): ServiceComparison {
  const byId = new Map(targets.map((t) => [t.id, t]));
  const bySvc = new Map(services.map((s) => [s.key, s]));
  const labPods = new Map(state.pods.map((p) => [p.key, p]));
  const podByIp = new Map(state.pods.map((p) => [p.ip, p]));
  const extIp = parseIp(state.external.ip);
  const cells: ComparedServiceCell[] = [];
  for (const c of result.cells) {
    const target = byId.get(c.to);
    const svc = target ? bySvc.get(target.service) : undefined;
    const tport = target?.ports.find((p) => p.port === c.port && p.protocol === c.protocol);
    const port = svc && tport ? svc.ports[tport.portIndex] : undefined;
    if (!target || !svc || !port || !tport) throw new Error(`probe cell ${c.from} -> ${c.to} ${c.port}/${c.protocol} names a Service port the lab does not have`);
    const srcPod = c.from === EXTERNAL_PEER ? undefined : labPods.get(c.from);
    const enginePod = srcPod ? engine.pods.get(srcPod.key) : undefined;
    let src: Endpoint;
    if (enginePod) src = podEndpoint(engine, enginePod);
    else if (c.from === EXTERNAL_PEER && extIp !== undefined) src = externalEndpoint(extIp);
    else throw new Error(`probe cell ${c.from} -> ${c.to}: unknown source`);
    const node = target.frontend === 'node-port' ? (target.node as string) : (srcPod?.node ?? '');
    const eps = endpointsForNode(svc, port, target.frontend === 'node-port' ? 'node-port' : 'cluster', node);
    const nodeIp = state.nodes.find((n) => n.name === node)?.underlayIp;
    const nodeSrc = nodeIp !== undefined ? parseIp(nodeIp) : undefined;
    const endpoints: ComparedServiceEndpoint[] = eps.map((e) => {
      const pod = podByIp.get(e.ip);
      const dstPod = pod ? engine.pods.get(pod.key) : undefined;
      const dst: Endpoint | undefined = dstPod ? podEndpoint(engine, dstPod) : undefined;
      const ip = parseIp(e.ip);
      const to = dst ?? (ip !== undefined ? externalEndpoint(ip) : undefined);
      const clusterNodePort = target.frontend === 'node-port' && svc.externalTrafficPolicy === 'Cluster';
      const hairpin = srcPod !== undefined && pod?.key === srcPod.key;
      let allowed: boolean;
      if (to === undefined) allowed = false;
      else if (clusterNodePort || hairpin) {
        // Masqueraded: ingress judged with the node's address; egress (a pod's own, hairpin) with the pod's.
        if (nodeSrc === undefined) throw new Error(`node ${node} has no address in the lab state`);
        const ingress = allows(evaluatePair(engine, externalEndpoint(nodeSrc), to, 'enforce').ingress, port.protocol, e.port);
        allowed = ingress && (!hairpin || allows(evaluatePair(engine, src, to, 'enforce').egress, port.protocol, e.port));
      } else allowed = allows(evaluatePair(engine, src, to, 'enforce').allowed, port.protocol, e.port);
      const served = pod !== undefined && pod.served.some((s) => s.port === e.port && s.protocol === port.protocol);
      return { pod: pod?.key ?? e.key, port: e.port, verdict: allowed ? 'Allowed' : 'Denied', served, ...((clusterNodePort || hairpin) && nodeIp !== undefined ? { seenAs: nodeIp } : {}) };
    });
    const good = endpoints.filter((e) => e.verdict === 'Allowed' && e.served);
    const expected: ServiceExpectation = endpoints.length > 0 && good.length === endpoints.length ? 'Allowed' : good.length === 0 ? 'Denied' : 'Partial';
    const observed = c.ok ? 'Allowed' : 'Denied';
    let skipped: ServiceSkip | undefined;
    let why: string | undefined;
    if (expected === 'Allowed') {
      if (!c.ok) why = 'every endpoint allows, yet no answer';
      else if (!good.some((e) => e.pod === c.reply)) why = `answered by ${c.reply ?? 'nobody'}, which is not an allowed endpoint`;
    } else if (expected === 'Denied') {
      if (c.ok) why = endpoints.length === 0 ? `no endpoint, yet answered by ${c.reply ?? '?'}` : `no endpoint allows, yet answered by ${c.reply ?? '?'}`;
    } else if (!c.ok) skipped = 'partial-no-answer';
    else if (!good.some((e) => e.pod === c.reply)) why = `answered by ${c.reply ?? 'nobody'}, which is not an allowed endpoint`;
    cells.push({
      from: c.from,
      to: c.to,
      port: c.port,
      protocol: c.protocol,
      expected,
      observed,
      ...(c.reply !== undefined ? { reply: c.reply } : {}),
      ...(c.ok || c.error === undefined ? {} : { error: c.error }),
      endpoints,
      ...(skipped ? { skipped } : {}),
      disagrees: skipped === undefined && why !== undefined,
      ...(skipped === undefined && why !== undefined ? { why } : {}),
    });
  }
  return { cells, compared: cells.filter((c) => !c.skipped).length, disagreements: cells.filter((c) => c.disagrees) };
}

/** Cells worth probing again: every endpoint allows but nothing answered (a slow machine). */
export function timedOutAllowedServiceCells(cmp: ServiceComparison, limit = 64): ComparedServiceCell[] {
  return cmp.disagreements.filter((c) => c.expected === 'Allowed' && !c.reply).slice(0, limit);
}

export function formatServiceComparison(cmp: ServiceComparison): string {
  const lines: string[] = [];
  for (const c of cmp.disagreements) {
    lines.push(`DISAGREE ${c.from} -> ${c.to} ${c.port}/${c.protocol}: the engine expects ${c.expected.toUpperCase()}, the kernel: ${c.observed === 'Allowed' ? `answered by ${c.reply ?? '?'}` : `not reachable${c.error ? ` (${c.error})` : ''}`} — ${c.why ?? ''}`);
    for (const e of c.endpoints) lines.push(`    endpoint ${e.pod} ${e.port}: ${e.verdict}${e.seenAs !== undefined ? ` (its policy sees ${e.seenAs}: masqueraded)` : ''}${e.served ? '' : ' (not served)'}`);
    if (c.endpoints.length === 0) lines.push('    no endpoint');
  }
  const skipped = cmp.cells.length - cmp.compared;
  const partial = cmp.cells.filter((c) => c.skipped === 'partial-no-answer').length;
  const n = cmp.disagreements.length;
  lines.push(
    `${cmp.compared} Service cell${cmp.compared === 1 ? '' : 's'}, ${n} disagreement${n === 1 ? '' : 's'}` +
      (skipped > 0 ? ` (${skipped} not compared: ${partial} partly reachable without an answer)` : ''),
  );
  return lines.join('\n');
}
