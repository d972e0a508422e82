// Policy lint: mistakes that are valid API objects but almost certainly not what the author
// meant. Every finding asks the same compiled engine the analyzer uses, so "selects nothing"
// means exactly what the enforcer would do with the policy.

import { escapeControl, escapeJson } from './escape.js';
import type {
  AdminPeer,
  AdminPort,
  AdminRule,
  Cluster,
  NetworkPolicy,
  NetworkPolicyPeer,
  NetworkPolicyRule,
  SourceRef,
} from '../model/cluster.js';
import { formatDiagnostic, objectName, type Diagnostic } from '../model/diagnostics.js';
import {
  buildClasses,
  inGroup,
  intersect,
  isEmpty,
  cidrInterval,
  resolvePorts,
  subtract,
  type AnalysisClass,
  type CompiledPolicy,
  type CompiledRule,
  type Direction,
  type Group,
  type PolicyEngine,
} from '../policy/index.js';
import { portsKey } from '../policy/cache.js';
import { evaluateDirection } from '../policy/pipeline.js';
import { allows, analyze } from '../policy/index.js';
import { clusterNodes, connectivityList } from './connlist.js';
import { ENTIRE_CLUSTER, exposure } from './exposure.js';
import { isEmptySelector } from '../policy/selector.js';
import { lintServices } from '../lb/lint.js';

/** A lint finding is a diagnostic: severity, stable code, object, field, message. */
export type Finding = Diagnostic;

export const LINT_CODES = [
  'policy-selects-nothing',
  'peer-selects-nothing',
  'rule-shadowed',
  'named-port-unresolved',
  'anp-priority-conflict',
  'anp-duplicate-priority',
  'invalid-cidr',
  'except-outside-cidr',
  'isolates-allows-nothing',
  'audit-mode',
  'exposed-to-cluster',
] as const;
export type LintCode = (typeof LINT_CODES)[number];

type AdminKind = 'AdminNetworkPolicy' | 'BaselineAdminNetworkPolicy';

interface Ctx {
  readonly engine: PolicyEngine;
  readonly classes: readonly AnalysisClass[];
  readonly out: Finding[];
}

function at(source: SourceRef | undefined): { file?: string; line?: number } {
  return {
    ...(source?.file !== undefined ? { file: source.file } : {}),
    ...(source?.line !== undefined ? { line: source.line } : {}),
  };
}

function report(
  ctx: Ctx,
  severity: Finding['severity'],
  code: LintCode,
  object: string,
  source: SourceRef | undefined,
  field: string | undefined,
  message: string,
): void {
  ctx.out.push({ severity, code, message, ...at(source), object, ...(field !== undefined ? { field } : {}) });
}

const peerKey = (d: Direction) => (d === 'ingress' ? 'from' : 'to');
const typeOf = (d: Direction) => (d === 'ingress' ? 'Ingress' : 'Egress');

function groupOf(ctx: Ctx, id: number): Group | undefined {
  return ctx.engine.group(id);
}

/** Is a peer group empty in the current input? Address groups are empty only when excepts cover them. */
function groupEmpty(ctx: Ctx, g: Group): boolean {
  switch (g.spec.kind) {
    case 'pods':
      return g.identities.size === 0;
    case 'cidr':
      return g.spec.intervals.length === 0;
    case 'nodes':
      return !ctx.classes.some((c) => inGroup(g, c.endpoint, ctx.engine.cache.nodes.values()));
  }
}

function inRule(ctx: Ctx, rule: CompiledRule, c: AnalysisClass): boolean {
  if (rule.peers === 'all') return true;
  return rule.peers.some((gid) => {
    const g = groupOf(ctx, gid);
    return g !== undefined && inGroup(g, c.endpoint, ctx.engine.cache.nodes.values());
  });
}

// ------------------------------------------------------------------ selection

function checkSubject(ctx: Ctx, compiled: CompiledPolicy, object: string, source: SourceRef | undefined, field: string): void {
  const subject = groupOf(ctx, compiled.subject);
  if (subject && subject.identities.size === 0) {
    report(ctx, 'warning', 'policy-selects-nothing', object, source, field, `selects no pod (${subject.description}): the policy has no effect`);
  }
}

function checkPeerGroups(
  ctx: Ctx,
  rule: CompiledRule | undefined,
  object: string,
  source: SourceRef | undefined,
  base: string,
  describePeer: (j: number) => string | undefined,
  invalid: ReadonlySet<number> = new Set(),
): void {
  if (!rule || rule.peers === 'all') return;
  rule.peers.forEach((gid, j) => {
    // A peer with an invalid CIDR has its error already; "matches nothing" would only repeat it.
    if (invalid.has(j)) return;
    const g = groupOf(ctx, gid);
    if (!g || !groupEmpty(ctx, g)) return;
    const what = g.spec.kind === 'pods' ? 'no pod' : g.spec.kind === 'nodes' ? 'no node' : 'no address';
    const extra = describePeer(j);
    report(ctx, 'warning', 'peer-selects-nothing', object, source, `${base}[${j}]`, `peer matches ${what} (${extra ?? g.description})`);
  });
}

// ------------------------------------------------------------------ CIDRs

/** Checks an ipBlock peer; false when it has an error. */
function checkIpBlock(ctx: Ctx, peer: NetworkPolicyPeer, object: string, source: SourceRef | undefined, field: string): boolean {
  if (peer.kind !== 'ipBlock') return true;
  const cidr = cidrInterval(peer.ipBlock.cidr);
  if (!cidr) {
    report(ctx, 'error', 'invalid-cidr', object, source, `${field}.ipBlock.cidr`, `invalid CIDR "${peer.ipBlock.cidr}"`);
    return false;
  }
  let ok = true;
  peer.ipBlock.except.forEach((text, k) => {
    const ex = cidrInterval(text);
    const f = `${field}.ipBlock.except[${k}]`;
    if (!ex) {
      report(ctx, 'error', 'invalid-cidr', object, source, f, `invalid CIDR "${text}" in except`);
      ok = false;
      return;
    }
    const inside = ex.family === cidr.family && ex.interval.start >= cidr.interval.start && ex.interval.end <= cidr.interval.end;
    // ValidateIPBlock: each except entry "must be a strict subset of cidr".
    const strict = ex.interval.start !== cidr.interval.start || ex.interval.end !== cidr.interval.end;
    if (!inside || !strict) {
      ok = false;
      report(ctx, 'error', 'except-outside-cidr', object, source, f, `except "${text}" is not a strict subset of cidr "${peer.ipBlock.cidr}"`);
    }
  });
  return ok;
}

// ------------------------------------------------------------------ named ports

/** Pod classes that can be the destination of a rule: the subject (ingress) or matching peers (egress). */
function destinations(ctx: Ctx, compiled: CompiledPolicy, rule: CompiledRule, direction: Direction): AnalysisClass[] {
  const pods = ctx.classes.filter((c) => c.kind === 'pod' && c.identity);
  if (direction === 'ingress') {
    const subject = groupOf(ctx, compiled.subject);
    return pods.filter((c) => subject !== undefined && inGroup(subject, c.endpoint, ctx.engine.cache.nodes.values()));
  }
  return pods.filter((c) => inRule(ctx, rule, c));
}

function checkNamedPort(
  ctx: Ctx,
  compiled: CompiledPolicy,
  rule: CompiledRule | undefined,
  direction: Direction,
  name: string,
  protocol: string | undefined,
  object: string,
  source: SourceRef | undefined,
  field: string,
): void {
  if (!rule) return;
  const dsts = destinations(ctx, compiled, rule, direction);
  // With no destination at all, "selects nothing" already says everything.
  if (dsts.length === 0) return;
  const found = dsts.some((c) => (c.identity?.ports ?? []).some((p) => p.name === name && (protocol === undefined || p.protocol === protocol)));
  if (found) return;
  const proto = protocol !== undefined ? `/${protocol}` : '';
  const whose = direction === 'ingress' ? 'selected pod' : 'destination pod';
  report(ctx, 'warning', 'named-port-unresolved', object, source, field, `named port "${name}"${proto} is not a container port of any ${whose}: it allows nothing`);
}

// ------------------------------------------------------------------ NetworkPolicy

function lintNetworkPolicy(ctx: Ctx, np: NetworkPolicy): void {
  const key = `NetworkPolicy ${np.namespace}/${np.name}`;
  const object = objectName('NetworkPolicy', np.name, np.namespace);
  const compiled = ctx.engine.policy(key);
  if (np.mode === 'audit') {
    report(ctx, 'notice', 'audit-mode', object, np.source, 'metadata.annotations', 'in audit mode (weir.dev/mode: audit): reported, not enforced');
  }
  if (compiled) checkSubject(ctx, compiled, object, np.source, 'spec.podSelector');
  for (const direction of ['ingress', 'egress'] as const) {
    const rules: readonly NetworkPolicyRule[] = np[direction];
    if (!np.policyTypes.includes(typeOf(direction))) continue; // the loader reports ignored rules
    // A deliberate default-deny selects everything (`podSelector: {}`) or says so in its name.
    if (rules.length === 0 && !isEmptySelector(np.podSelector) && !/deny/i.test(np.name)) {
      report(
        ctx,
        'warning',
        'isolates-allows-nothing',
        object,
        np.source,
        'spec.policyTypes',
        `isolates the selected pods for ${typeOf(direction)} but allows nothing: likely mistake (a default-deny normally uses an empty podSelector)`,
      );
    }
    rules.forEach((rule, i) => {
      const base = `spec.${direction}[${i}]`;
      const crule = compiled?.[direction][i];
      const invalid = new Set<number>();
      rule.peers.forEach((peer, j) => {
        if (!checkIpBlock(ctx, peer, object, np.source, `${base}.${peerKey(direction)}[${j}]`)) invalid.add(j);
      });
      checkPeerGroups(ctx, crule, object, np.source, `${base}.${peerKey(direction)}`, () => undefined, invalid);
      rule.ports.forEach((p, k) => {
        if (typeof p.port === 'string' && compiled) {
          checkNamedPort(ctx, compiled, crule, direction, p.port, p.protocol, object, np.source, `${base}.ports[${k}].port`);
        }
      });
    });
  }
}

// ------------------------------------------------------------------ admin policies

function portField(p: AdminPort): string {
  return p.kind === 'portNumber' ? 'portNumber' : p.kind === 'namedPort' ? 'namedPort' : 'portRange';
}

function describeAdminPeer(p: AdminPeer): string | undefined {
  return p.kind === 'networks' ? `networks ${p.networks.join(', ')}` : undefined;
}

function lintAdminRules(ctx: Ctx, compiled: CompiledPolicy | undefined, direction: Direction, rules: readonly AdminRule[], object: string, source: SourceRef | undefined): void {
  rules.forEach((rule, i) => {
    const base = `spec.${direction}[${i}]`;
    const crule = compiled?.[direction][i];
    const invalid = new Set<number>();
    rule.peers.forEach((peer, j) => {
      if (peer.kind !== 'networks') return;
      peer.networks.forEach((n, k) => {
        if (cidrInterval(n)) return;
        invalid.add(j);
        report(ctx, 'error', 'invalid-cidr', object, source, `${base}.${peerKey(direction)}[${j}].networks[${k}]`, `invalid CIDR "${n}"`);
      });
    });
    checkPeerGroups(ctx, crule, object, source, `${base}.${peerKey(direction)}`, (j) => describeAdminPeer(rule.peers[j]), invalid);
    (rule.ports ?? []).forEach((p, k) => {
      if (p.kind === 'namedPort' && compiled) {
        checkNamedPort(ctx, compiled, crule, direction, p.name, undefined, object, source, `${base}.ports[${k}].${portField(p)}`);
      }
    });
  });
}

/**
 * A rule is shadowed when, for every subject pod and every peer (pod class or address atom)
 * it matches, the connections it would decide are all decided first by rules evaluated
 * before it: earlier rules of the same policy, or rules of ANPs with a strictly higher
 * precedence (lower priority value). Equal priorities have no defined order and are
 * reported separately.
 */
function shadowing(ctx: Ctx, compiled: CompiledPolicy, rule: CompiledRule, direction: Direction): CompiledRule[] | undefined {
  const subject = groupOf(ctx, compiled.subject);
  if (!subject) return undefined;
  const shadowers = new Map<number, CompiledRule>();
  let matched = false;
  // Subjects with the same program (and, for named ports, the same container ports) give the same answer.
  const seen = new Set<string>();
  for (const sid of subject.identities) {
    const program = ctx.engine.program(sid, direction, 'full');
    const sig = `${program.key}#${direction === 'ingress' && program.hasNamedPorts ? portsKey(ctx.engine.cache.identities.get(sid)?.ports ?? []) : ''}`;
    if (seen.has(sig)) continue;
    seen.add(sig);
    const list = compiled.tier === 'AdminNetworkPolicy' ? program.admin : program.baseline;
    const idx = list.findIndex((r) => r.id === rule.id);
    if (idx < 0) continue;
    const earlier = list
      .slice(0, idx)
      .filter((r) => r.ref.policy === rule.ref.policy || (r.ref.priority ?? 0) < (rule.ref.priority ?? 0));
    const subjectPorts = ctx.engine.cache.identities.get(sid)?.ports;
    for (const peer of ctx.classes) {
      if (!inRule(ctx, rule, peer)) continue;
      const dstPorts = direction === 'ingress' ? subjectPorts : peer.identity?.ports;
      let conns = resolvePorts(rule, dstPorts);
      if (isEmpty(conns)) continue;
      matched = true;
      for (const e of earlier) {
        if (isEmpty(conns)) break;
        if (!inRule(ctx, e, peer)) continue;
        const hit = intersect(resolvePorts(e, dstPorts), conns);
        if (isEmpty(hit)) continue;
        shadowers.set(e.id, e);
        conns = subtract(conns, hit);
      }
      if (!isEmpty(conns)) return undefined;
    }
  }
  return matched ? [...shadowers.values()] : undefined;
}

function ruleName(r: CompiledRule): string {
  const prio = r.ref.priority !== undefined ? ` (priority ${r.ref.priority})` : '';
  return `${r.ref.policy}${prio} ${r.ref.rule}`;
}

function lintShadowed(ctx: Ctx, compiled: CompiledPolicy | undefined, object: string, source: SourceRef | undefined): void {
  if (!compiled) return;
  for (const direction of ['ingress', 'egress'] as const) {
    compiled[direction].forEach((rule, i) => {
      const by = shadowing(ctx, compiled, rule, direction);
      if (!by || by.length === 0) return;
      report(
        ctx,
        'warning',
        'rule-shadowed',
        object,
        source,
        `spec.${direction}[${i}]`,
        `rule ${rule.ref.rule} never decides anything: everything it matches is decided first by ${by.map(ruleName).join(', ')}`,
      );
    });
  }
}

function lintAdmin(ctx: Ctx, tier: AdminKind, p: { name: string; ingress: readonly AdminRule[]; egress: readonly AdminRule[]; mode: string; source?: SourceRef }): void {
  const object = objectName(tier, p.name);
  const compiled = ctx.engine.policy(`${tier} ${p.name}`);
  if (p.mode === 'audit') {
    report(ctx, 'notice', 'audit-mode', object, p.source, 'metadata.annotations', 'in audit mode (weir.dev/mode: audit): reported, not enforced');
  }
  if (compiled) checkSubject(ctx, compiled, object, p.source, 'spec.subject');
  lintAdminRules(ctx, compiled, 'ingress', p.ingress, object, p.source);
  lintAdminRules(ctx, compiled, 'egress', p.egress, object, p.source);
  lintShadowed(ctx, compiled, object, p.source);
}

function lintPriorities(ctx: Ctx, cluster: Cluster): void {
  const anps = [...cluster.adminNetworkPolicies].sort((a, b) => a.priority - b.priority || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (let i = 0; i < anps.length; i++) {
    for (let j = i + 1; j < anps.length && anps[j].priority === anps[i].priority; j++) {
      const a = anps[i];
      const b = anps[j];
      const ga = ctx.engine.policy(`AdminNetworkPolicy ${a.name}`);
      const gb = ctx.engine.policy(`AdminNetworkPolicy ${b.name}`);
      const sa = ga ? groupOf(ctx, ga.subject) : undefined;
      const sb = gb ? groupOf(ctx, gb.subject) : undefined;
      const overlap = sa !== undefined && sb !== undefined && [...sa.identities].some((id) => sb.identities.has(id));
      const object = objectName('AdminNetworkPolicy', b.name);
      if (overlap) {
        report(
          ctx,
          'error',
          'anp-priority-conflict',
          object,
          b.source,
          'spec.priority',
          `conflicting: priority ${b.priority} is also used by AdminNetworkPolicy ${a.name} and their subjects overlap; the order between them is undefined`,
        );
      } else {
        report(
          ctx,
          'warning',
          'anp-duplicate-priority',
          object,
          b.source,
          'spec.priority',
          `priority ${b.priority} is also used by AdminNetworkPolicy ${a.name} (their subjects do not overlap today)`,
        );
      }
    }
  }
}

/** Orders findings by file, line and object; findings of one object keep their order. */
export function compareFindings(a: Finding, b: Finding): number {
  const s = (x: string | undefined) => x ?? '';
  if (s(a.file) !== s(b.file)) return s(a.file) < s(b.file) ? -1 : 1;
  if ((a.line ?? 0) !== (b.line ?? 0)) return (a.line ?? 0) - (b.line ?? 0);
  if (s(a.object) !== s(b.object)) return s(a.object) < s(b.object) ? -1 : 1;
  return 0;
}

/** Lints the policies of a cluster loaded into `engine`. Findings are sorted by file, line, object. */
export function lint(engine: PolicyEngine, cluster: Cluster): Finding[] {
  const ctx: Ctx = { engine, classes: buildClasses(engine), out: [] };
  for (const np of cluster.networkPolicies) lintNetworkPolicy(ctx, np);
  for (const anp of cluster.adminNetworkPolicies) lintAdmin(ctx, 'AdminNetworkPolicy', anp);
  if (cluster.baselineAdminNetworkPolicy) lintAdmin(ctx, 'BaselineAdminNetworkPolicy', cluster.baselineAdminNetworkPolicy);
  lintPriorities(ctx, cluster);
  lintExposure(ctx);
  ctx.out.push(...lintServices(cluster));
  return ctx.out.sort(compareFindings);
}

/**
 * A workload exposed to the entire cluster (every pod of every namespace, now or later) on a
 * port that no other workload of the input connects to it on: the exposure serves nobody here,
 * so the rule is likely wider than meant.
 */
function lintExposure(ctx: Ctx): void {
  const result = analyze(ctx.engine);
  const lines = connectivityList(ctx.engine, result);
  const x = exposure(ctx.engine, result, lines);
  for (const e of x.ingress) {
    if (e.peer !== ENTIRE_CLUSTER) continue;
    const node = clusterNodes(result).find((nd) => nd.name === e.workload);
    const cls = node ? result.classes[node.classes[0]] : undefined;
    if (!cls?.identity) continue;
    const program = ctx.engine.program(cls.identity.id, 'ingress', result.mode);
    // Unprotected workloads are reported as such by exposure analysis; this is about rules.
    if (!program.isolated && program.admin.length === 0 && program.baseline.length === 0) continue;
    const exposed = resolveExposure(ctx, cls.identity.id);
    for (const cp of cls.identity.ports) {
      if (!allows(exposed, cp.protocol, cp.port)) continue;
      const used = lines.some((l) => l.dst.name === e.workload && l.src.kind !== 'external' && l.src.name !== e.workload && allows(l.conns, cp.protocol, cp.port));
      if (used) continue;
      const m = /^([^/]+)\/(.+)\[([A-Za-z]+)\]$/.exec(e.workload);
      const object = m ? objectName(m[3], m[2], m[1]) : e.workload;
      const pod = [...cls.pods][0];
      report(
        ctx,
        'warning',
        'exposed-to-cluster',
        object,
        pod?.source,
        undefined,
        `exposed to the entire cluster on ${cp.protocol} ${cp.port}, but no other workload here connects to it on that port: any pod of any namespace, now or later, may (narrow the rule's peers)`,
      );
    }
  }
}

/** What a workload's ingress admits from a pod that is in no particular group. */
function resolveExposure(ctx: Ctx, identity: number): ReturnType<typeof intersect> {
  const program = ctx.engine.program(identity, 'ingress');
  const id = ctx.engine.cache.identities.get(identity);
  return evaluateDirection({
    program,
    inGroup: (g) => {
      const grp = ctx.engine.group(g);
      return grp !== undefined && grp.spec.kind === 'pods' && grp.spec.namespace === undefined && isEmptySelector(grp.spec.namespaceSelector ?? {}) && isEmptySelector(grp.spec.podSelector);
    },
    dstPorts: id?.ports,
  });
}

export interface LintSummary {
  readonly errors: number;
  readonly warnings: number;
  readonly notices: number;
}

export function summarize(findings: readonly Finding[]): LintSummary {
  return {
    errors: findings.filter((f) => f.severity === 'error').length,
    warnings: findings.filter((f) => f.severity === 'warning').length,
    notices: findings.filter((f) => f.severity === 'notice').length,
  };
}

export const LINT_FORMATS = ['txt', 'json'] as const;
export type LintFormat = (typeof LINT_FORMATS)[number];

/** txt: one formatDiagnostic line per finding; json: the array of findings. */
export function renderFindings(findings: readonly Finding[], format: LintFormat): string {
  if (format === 'json') return escapeJson(`${JSON.stringify(findings, null, 2)}\n`);
  return findings.map((f) => `${escapeControl(formatDiagnostic(f))}\n`).join('');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

export function summaryText(s: LintSummary): string {
  return `${plural(s.errors, 'error')}, ${plural(s.warnings, 'warning')}, ${plural(s.notices, 'notice')}`;
}

// ------------------------------------------- what the API server rejects for form (issue 8)
//
// The loader reads some objects the API server would reject although their meaning is plain
// (an ANP pods peer without one of its selectors, a CIDR with host bits, a name that is not
// RFC 1123, a container port entry without containerPort, an owner reference without kind):
// a warning while loading, so analysis goes on; an error in `weir lint`, so CI catches a
// manifest that `kubectl apply` would refuse.

/** Loader diagnostic codes for objects the API server would reject. */
export const API_REJECTED_CODES: ReadonlySet<string> = new Set([
  'anp-selector-missing',
  'cidr-host-bits',
  'name-not-rfc1123',
  'container-port-missing',
  'owner-kind-missing',
]);

/** The loader's diagnostics as lint findings: what the API server rejects becomes an error. */
export function loaderFindings(diagnostics: readonly Diagnostic[]): Finding[] {
  return diagnostics.map((d) => (API_REJECTED_CODES.has(d.code) && d.severity !== 'error' ? { ...d, severity: 'error' as const } : d));
}
