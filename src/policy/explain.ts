// Every verdict explains itself: which tier, policy and rule decided each direction.

import type { Pod, Protocol } from '../model/cluster.js';
import { allows, isEmpty, portsConn } from './connections.js';
import { evaluateSideVerdicts, externalEndpoint, podEndpoint, type Endpoint } from './endpoint.js';
import type { PolicyEngine, ProgramMode } from './engine.js';
import { formatInterval, cidrInterval, parseIp, type IpInterval } from './ip.js';
import type { Decision } from './pipeline.js';
import type { Direction, RuleRef } from './rules.js';

/** `Unknown`: a policy in doubt (an invalid field) could make it either; never shown as allowed. */
export type Verdict = 'Allowed' | 'Denied' | 'Unknown';

export interface ExplainStep {
  readonly tier: RuleRef['tier'] | 'default';
  readonly action: 'Allow' | 'Deny' | 'Pass';
  readonly policy?: string;
  readonly rule?: string;
  readonly audit: boolean;
  readonly text: string;
  /** The step is in doubt: `Kind ns/name field` of the invalid part. */
  readonly doubt?: string;
}

export interface DirectionExplanation {
  readonly direction: Direction;
  /** The pod whose policies apply in this direction; absent for an external peer. */
  readonly subject?: string;
  readonly verdict: Verdict;
  /** The step that decided, last of `steps`. */
  readonly decidedBy: ExplainStep;
  readonly steps: readonly ExplainStep[];
  /** Verdict Unknown: the invalid parts (`Kind ns/name field`) that could change it. */
  readonly unknownBecause?: readonly string[];
}

/** One sub-range of a CIDR endpoint over which the explanation is the same. */
export interface RangeExplanation {
  /** `first-last` addresses. */
  readonly range: string;
  readonly verdict: Verdict;
  readonly unknownBecause?: readonly string[];
  readonly egress: DirectionExplanation;
  readonly ingress: DirectionExplanation;
}

export interface Explanation {
  readonly from: string;
  readonly to: string;
  readonly protocol: Protocol;
  readonly port: number;
  /** `Mixed` only for a CIDR endpoint whose sub-ranges (`ranges`) get different verdicts. */
  readonly verdict: Verdict | 'Mixed';
  /** Verdict Unknown: the invalid parts (`Kind ns/name field`) that could change it. */
  readonly unknownBecause?: readonly string[];
  /** A CIDR endpoint whose addresses are not all explained alike: one entry per sub-range. */
  readonly ranges?: readonly RangeExplanation[];
  readonly egress: DirectionExplanation;
  readonly ingress: DirectionExplanation;
  /**
   * Present when policies in audit mode would change the verdict: what the verdict would be
   * if they were enforced, and which audit rule made the difference.
   */
  readonly audit?: {
    readonly verdict: Verdict;
    readonly unknownBecause?: readonly string[];
    readonly egress: DirectionExplanation;
    readonly ingress: DirectionExplanation;
  };
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
 * `ns/w-3`: replica 3 of a workload the model keeps as one representative pod `ns/w-0` with a
 * replica count (the loader does not materialise replicas); it is that pod, as its replicas are
 * identical.
 */
function replicaOf(engine: PolicyEngine, spec: string): Pod | undefined {
  const m = /^(.*)-(\d+)$/.exec(spec);
  if (!m || m[2] === '0') return undefined;
  const rep = engine.pods.get(`${m[1]}-0`);
  return rep && Number(m[2]) < (rep.replicas ?? 1) ? rep : undefined;
}

/**
 * Resolves `ns/pod`, `ns/workload` (its first pod), an IP address or a CIDR (its first
 * address; the analyzer's external ranges tell where verdicts change) to an endpoint.
 */
export function resolveEndpoint(engine: PolicyEngine, spec: string): { endpoint: Endpoint; label: string; range?: IpInterval } {
  const pod = engine.pods.get(spec);
  if (pod) return { endpoint: podEndpoint(engine, pod), label: podName(pod) };
  const replica = replicaOf(engine, spec);
  if (replica) return { endpoint: podEndpoint(engine, replica), label: spec };
  if (spec.includes('/') && !cidrInterval(spec)) {
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
  const cidr = cidrInterval(spec);
  // A CIDR stands for the addresses of the range outside the cluster; explain() splits it where
  // verdicts may change.
  if (cidr) return { endpoint: externalEndpoint(cidr.interval.start), label: `${formatInterval(cidr.interval)}[External]`, range: cidr.interval };
  throw new EndpointNotFoundError(spec, 'expected ns/pod, ns/workload, an IP address or a CIDR');
}

function stepOf(d: Decision, subject: string, direction: Direction, isolating: readonly string[] = []): ExplainStep {
  if (d.rule) {
    const r = d.rule.ref;
    const prio = r.priority !== undefined ? ` (priority ${r.priority})` : '';
    const verb = d.action === 'Pass' ? 'passes to the next tier' : d.action === 'Allow' ? 'allows' : 'denies';
    const doubtful = d.doubt !== undefined;
    const mayVerb = d.rule.doubt?.anyAction ? 'may allow, deny or pass' : `may ${d.action === 'Pass' ? 'pass to the next tier' : d.action === 'Allow' ? 'allow' : 'deny'}`;
    return {
      tier: r.tier,
      action: d.action,
      policy: r.policy,
      rule: r.rule,
      audit: r.audit,
      text: doubtful
        ? `${r.policy}${prio} ${r.rule} ${mayVerb} this, or not apply (invalid: ${d.doubt})${r.audit ? ' [audit mode]' : ''}`
        : `${r.policy}${prio} ${r.rule} ${verb}${r.audit ? ' [audit mode]' : ''}`,
      ...(doubtful ? { doubt: d.doubt } : {}),
    };
  }
  if (d.reason === 'isolated' && d.doubt !== undefined) {
    return {
      tier: 'default',
      action: 'Deny',
      audit: false,
      doubt: d.doubt,
      text: `${subject} may be isolated for ${direction} (invalid: ${d.doubt}): then nothing certain allows this`,
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
  const v = evaluateSideVerdicts(engine, direction, src.endpoint, dst.endpoint, mode, portsConn(protocol, port, port), trace, true);
  const verdict: Verdict = allows(v.allowed, protocol, port) ? 'Allowed' : allows(v.unknown, protocol, port) ? 'Unknown' : 'Denied';
  const unknownBecause = verdict === 'Unknown' ? [...new Set((v.doubts ?? []).map((d) => d.reason))].sort() : undefined;
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
    (verdict === 'Unknown' ? steps.find((s) => s.doubt !== undefined) : undefined) ??
    [...steps].reverse().find((s) => s.action !== 'Pass' && s.doubt === undefined) ??
    [...steps].reverse().find((s) => s.action !== 'Pass') ??
    stepOf({ rule: undefined, reason: 'default-allow', action: 'Allow', conns: portsConn(protocol, port, port) }, subject.label, direction);
  return { direction, subject: subject.label, verdict, decidedBy: decisive, steps, ...(unknownBecause ? { unknownBecause } : {}) };
}

function pairVerdict(egress: DirectionExplanation, ingress: DirectionExplanation): { verdict: Verdict; unknownBecause?: string[] } {
  if (egress.verdict === 'Denied' || ingress.verdict === 'Denied') return { verdict: 'Denied' };
  if (egress.verdict === 'Allowed' && ingress.verdict === 'Allowed') return { verdict: 'Allowed' };
  return { verdict: 'Unknown', unknownBecause: [...new Set([...(egress.unknownBecause ?? []), ...(ingress.unknownBecause ?? [])])].sort() };
}

/**
 * Where verdicts may change inside a range: at the bounds of every ipBlock, `networks` entry and
 * node address the policies name. Each piece is explained alike for all its addresses.
 */
function rangePieces(engine: PolicyEngine, range: IpInterval): IpInterval[] {
  const cuts = new Set<bigint>([range.start]);
  const cut = (x: bigint) => {
    if (x > range.start && x <= range.end) cuts.add(x);
  };
  for (const g of engine.cache.groups.values()) {
    if (g.spec.kind !== 'cidr') continue;
    for (const iv of g.spec.intervals) {
      cut(iv.start);
      cut(iv.end + 1n);
    }
  }
  for (const node of engine.cache.nodes.values()) {
    const ip = node.ip !== undefined ? parseIp(node.ip) : undefined;
    if (ip !== undefined) {
      cut(ip);
      cut(ip + 1n);
    }
  }
  const sorted = [...cuts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return sorted.map((start, i) => ({ start, end: i + 1 < sorted.length ? sorted[i + 1] - 1n : range.end }));
}

type Resolved = { endpoint: Endpoint; label: string; range?: IpInterval };

function explainPair(engine: PolicyEngine, src: Resolved, dst: Resolved, protocol: Protocol, port: number): Explanation {
  const run = (mode: ProgramMode) => {
    const egress = explainSide(engine, 'egress', src, dst, protocol, port, mode);
    const ingress = explainSide(engine, 'ingress', src, dst, protocol, port, mode);
    return { egress, ingress, ...pairVerdict(egress, ingress) };
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

/**
 * The verdict and its reasons. A CIDR endpoint is answered for its whole range: one verdict
 * when every address gets the same explanation, else one entry per sub-range (`ranges`).
 */
export function explain(engine: PolicyEngine, from: string, to: string, protocol: Protocol, port: number): Explanation {
  const src = resolveEndpoint(engine, from);
  const dst = resolveEndpoint(engine, to);
  const side = src.range ? 'src' : dst.range ? 'dst' : undefined;
  if (!side) return explainPair(engine, src, dst, protocol, port);
  const whole = (side === 'src' ? src.range : dst.range) as IpInterval;
  const groups: { range: IpInterval; e: Explanation; sig: string }[] = [];
  for (const piece of rangePieces(engine, whole)) {
    const at: Resolved = { endpoint: externalEndpoint(piece.start), label: `${formatInterval(piece)}[External]` };
    const e = explainPair(engine, side === 'src' ? at : src, side === 'dst' ? at : dst, protocol, port);
    const steps = (d: DirectionExplanation) => `${d.verdict}:${d.steps.map((x) => x.text).join('|')}`;
    const sig = `${e.verdict}#${steps(e.egress)}#${steps(e.ingress)}#${e.audit ? `${e.audit.verdict}${steps(e.audit.egress)}${steps(e.audit.ingress)}` : ''}`;
    const last = groups[groups.length - 1];
    if (last && last.sig === sig && last.range.end + 1n === piece.start) last.range = { start: last.range.start, end: piece.end };
    else groups.push({ range: piece, e, sig });
  }
  const first = groups[0].e;
  const label = `${formatInterval(whole)}[External]`;
  const named = { from: side === 'src' ? label : first.from, to: side === 'dst' ? label : first.to };
  if (groups.length === 1) return { ...first, ...named };
  const verdicts = new Set(groups.map((g) => g.e.verdict));
  const ranges: RangeExplanation[] = groups.map((g) => ({
    range: formatInterval(g.range),
    verdict: g.e.verdict as Verdict,
    ...(g.e.unknownBecause ? { unknownBecause: g.e.unknownBecause } : {}),
    egress: g.e.egress,
    ingress: g.e.ingress,
  }));
  return { ...first, ...named, verdict: verdicts.size === 1 ? first.verdict : 'Mixed', ranges };
}

/** Text form for the CLI. */
export function formatExplanation(e: Explanation): string {
  const lines: string[] = [];
  const verdictText = (v: Verdict | 'Mixed', because?: readonly string[]) =>
    v === 'Unknown' ? `UNKNOWN (invalid: ${(because ?? []).join('; ')})` : v === 'Mixed' ? 'MIXED (the range splits, see below)' : v.toUpperCase();
  lines.push(`${e.from} => ${e.to} : ${e.protocol} ${e.port}`);
  lines.push(`verdict: ${verdictText(e.verdict, e.unknownBecause)}`);
  const side = (d: DirectionExplanation, indent: string) => {
    lines.push(`${indent}${d.direction} (${d.subject ?? 'no subject'}): ${d.verdict}`);
    for (const s of d.steps) lines.push(`${indent}  - ${s.text}`);
    if (d.steps.length === 0) lines.push(`${indent}  - ${d.decidedBy.text}`);
  };
  if (e.ranges) {
    for (const r of e.ranges) {
      lines.push(`  ${r.range}: ${verdictText(r.verdict, r.unknownBecause)}`);
      side(r.egress, '    ');
      side(r.ingress, '    ');
    }
    return lines.join('\n');
  }
  side(e.egress, '  ');
  side(e.ingress, '  ');
  if (e.audit) {
    lines.push(`audit: with policies in audit mode enforced, the verdict would be ${verdictText(e.audit.verdict, e.audit.unknownBecause)}`);
    side(e.audit.egress, '  ');
    side(e.audit.ingress, '  ');
  }
  return lines.join('\n');
}
