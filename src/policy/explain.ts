// Every verdict explains itself: which tier, policy and rule decided each direction.

import type { Pod, Protocol } from '../model/cluster.js';
import { allows, isEmpty, portsConn } from './connections.js';
import { evaluateSide, externalEndpoint, podEndpoint, type Endpoint } from './endpoint.js';
import type { PolicyEngine, ProgramMode } from './engine.js';
import { formatIp, parseCidr, parseIp } from './ip.js';
import type { Decision } from './pipeline.js';
import type { Direction, RuleRef } from './rules.js';

export type Verdict = 'Allowed' | 'Denied';

export interface ExplainStep {
  readonly tier: RuleRef['tier'] | 'default';
  readonly action: 'Allow' | 'Deny' | 'Pass';
  readonly policy?: string;
  readonly rule?: string;
  readonly audit: boolean;
  readonly text: string;
}

export interface DirectionExplanation {
  readonly direction: Direction;
  /** The pod whose policies apply in this direction; absent for an external peer. */
  readonly subject?: string;
  readonly verdict: Verdict;
  /** The step that decided, last of `steps`. */
  readonly decidedBy: ExplainStep;
  readonly steps: readonly ExplainStep[];
}

export interface Explanation {
  readonly from: string;
  readonly to: string;
  readonly protocol: Protocol;
  readonly port: number;
  readonly verdict: Verdict;
  readonly egress: DirectionExplanation;
  readonly ingress: DirectionExplanation;
  /**
   * Present when policies in audit mode would change the verdict: what the verdict would be
   * if they were enforced, and which audit rule made the difference.
   */
  readonly audit?: { readonly verdict: Verdict; readonly egress: DirectionExplanation; readonly ingress: DirectionExplanation };
}

export class EndpointNotFoundError extends Error {
  constructor(spec: string, hint: string) {
    super(`no pod, workload or address matches "${spec}"${hint ? `: ${hint}` : ''}`);
    this.name = 'EndpointNotFoundError';
  }
}

function podName(p: Pod): string {
  return `${p.namespace}/${p.name}`;
}

/**
 * Resolves `ns/pod`, `ns/workload` (its first pod), an IP address or a CIDR (its first
 * address; the analyzer's external ranges tell where verdicts change) to an endpoint.
 */
export function resolveEndpoint(engine: PolicyEngine, spec: string): { endpoint: Endpoint; label: string } {
  const pod = engine.pods.get(spec);
  if (pod) return { endpoint: podEndpoint(engine, pod), label: podName(pod) };
  if (spec.includes('/') && !parseCidr(spec)) {
    const [ns, name] = spec.split('/', 2);
    const prefix = `${ns}/${name}[`;
    const candidates = [...engine.pods.values()].filter((p) => p.workload.startsWith(prefix)).sort((a, b) => (a.name < b.name ? -1 : 1));
    if (candidates.length > 0) return { endpoint: podEndpoint(engine, candidates[0]), label: candidates[0].workload };
    const inNs = [...engine.pods.values()].filter((p) => p.namespace === ns).map((p) => p.name);
    throw new EndpointNotFoundError(spec, inNs.length ? `pods in ${ns}: ${inNs.slice(0, 8).join(', ')}` : `no pods in namespace ${ns}`);
  }
  const ip = parseIp(spec);
  if (ip !== undefined) {
    const owner = [...engine.pods.values()].find((p) => p.ip !== undefined && parseIp(p.ip) === ip);
    if (owner) return { endpoint: podEndpoint(engine, owner), label: `${podName(owner)} (${spec})` };
    return { endpoint: externalEndpoint(ip), label: `${spec}[External]` };
  }
  const cidr = parseCidr(spec);
  if (cidr) return { endpoint: externalEndpoint(cidr.interval.start), label: `${formatIp(cidr.interval.start)}[External] (in ${spec})` };
  throw new EndpointNotFoundError(spec, 'expected ns/pod, ns/workload, an IP address or a CIDR');
}

function stepOf(d: Decision, subject: string, direction: Direction, isolating: readonly string[] = []): ExplainStep {
  if (d.rule) {
    const r = d.rule.ref;
    const prio = r.priority !== undefined ? ` (priority ${r.priority})` : '';
    const verb = d.action === 'Pass' ? 'passes to the next tier' : d.action === 'Allow' ? 'allows' : 'denies';
    return {
      tier: r.tier,
      action: d.action,
      policy: r.policy,
      rule: r.rule,
      audit: r.audit,
      text: `${r.policy}${prio} ${r.rule} ${verb}${r.audit ? ' [audit mode]' : ''}`,
    };
  }
  if (d.reason === 'isolated') {
    return {
      tier: 'default',
      action: 'Deny',
      audit: false,
      policy: isolating.join(', ') || undefined,
      text: `${subject} is isolated for ${direction} by ${isolating.length ? isolating.join(', ') : 'NetworkPolicy'} and no rule of those policies allows this: default deny`,
    };
  }
  return { tier: 'default', action: 'Allow', audit: false, text: `no policy denies this for ${subject}: default allow` };
}

function explainSide(
  engine: PolicyEngine,
  direction: Direction,
  src: { endpoint: Endpoint; label: string },
  dst: { endpoint: Endpoint; label: string },
  protocol: Protocol,
  port: number,
  mode: ProgramMode,
): DirectionExplanation {
  const subject = direction === 'egress' ? src : dst;
  const trace: Decision[] = [];
  const allowed = evaluateSide(engine, direction, src.endpoint, dst.endpoint, mode, portsConn(protocol, port, port), trace);
  const verdict: Verdict = allows(allowed, protocol, port) ? 'Allowed' : 'Denied';
  if (subject.endpoint.kind !== 'pod') {
    const step: ExplainStep = {
      tier: 'default',
      action: 'Allow',
      audit: false,
      text: `${subject.label} is outside the cluster: no ${direction} policy applies`,
    };
    return { direction, verdict, decidedBy: step, steps: [step] };
  }
  if (subject.endpoint.pod?.hostNetwork) {
    const step: ExplainStep = {
      tier: 'default',
      action: 'Allow',
      audit: false,
      text: `${subject.label} uses the host network: policies do not select it`,
    };
    return { direction, subject: subject.label, verdict, decidedBy: step, steps: [step] };
  }
  const isolating = subject.endpoint.identity ? engine.program(subject.endpoint.identity.id, direction, mode).isolatingPolicies : [];
  const steps = trace.filter((d) => !isEmpty(d.conns)).map((d) => stepOf(d, subject.label, direction, isolating));
  const decisive =
    [...steps].reverse().find((s) => s.action !== 'Pass') ??
    stepOf({ rule: undefined, reason: 'default-allow', action: 'Allow', conns: portsConn(protocol, port, port) }, subject.label, direction);
  return { direction, subject: subject.label, verdict, decidedBy: decisive, steps };
}

export function explain(engine: PolicyEngine, from: string, to: string, protocol: Protocol, port: number): Explanation {
  const src = resolveEndpoint(engine, from);
  const dst = resolveEndpoint(engine, to);
  const run = (mode: ProgramMode) => {
    const egress = explainSide(engine, 'egress', src, dst, protocol, port, mode);
    const ingress = explainSide(engine, 'ingress', src, dst, protocol, port, mode);
    const verdict: Verdict = egress.verdict === 'Allowed' && ingress.verdict === 'Allowed' ? 'Allowed' : 'Denied';
    return { egress, ingress, verdict };
  };
  const enforced = run('enforce');
  const full = run('full');
  const auditMatters =
    full.verdict !== enforced.verdict ||
    full.egress.decidedBy.audit ||
    full.ingress.decidedBy.audit;
  return {
    from: src.label,
    to: dst.label,
    protocol,
    port,
    ...enforced,
    audit: auditMatters ? full : undefined,
  };
}

/** Text form for the CLI. */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  lines.push(`${e.from} => ${e.to} : ${e.protocol} ${e.port}`);
  lines.push(`verdict: ${e.verdict.toUpperCase()}`);
  const side = (d: DirectionExplanation, indent: string) => {
    lines.push(`${indent}${d.direction} (${d.subject ?? 'no subject'}): ${d.verdict}`);
    for (const s of d.steps) lines.push(`${indent}  - ${s.text}`);
    if (d.steps.length === 0) lines.push(`${indent}  - ${d.decidedBy.text}`);
  };
  side(e.egress, '  ');
  side(e.ingress, '  ');
  if (e.audit) {
    lines.push(`audit: with policies in audit mode enforced, the verdict would be ${e.audit.verdict.toUpperCase()}`);
    side(e.audit.egress, '  ');
    side(e.audit.ingress, '  ');
  }
  return lines.join('\n');
}
