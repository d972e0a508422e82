// `weir lab probe`: real TCP connects and UDP request/replies between every pair of peers.
// By default a short summary (cells, reachable, disagreements, audit changes); the per-port
// matrices with `--matrix`; with `--compare`, every disagreeing cell with the engine's
// explanation (src/lab/compare.ts).

import { compareProbe, comparisonJson, formatComparison, mergeProbeCells, timedOutAllowedCells, type Comparison } from '../../lab/compare.js';
import { desiredDir, hasDesired } from '../../lab/desired.js';
import { labProxiesServices } from '../../lab/kube.js';
import { formatProbeSummary, formatReachability, parsePortSpec, probe, type PortSpec, type ProbeResult } from '../../lab/index.js';
import { compareServiceProbe, formatServiceComparison, timedOutAllowedServiceCells, type ServiceComparison } from '../../lab/compare-services.js';
import { labServices, probeServices, serviceOfTarget, serviceTargets } from '../../lab/probe-services.js';
import type { Cluster } from '../../model/cluster.js';
import { PolicyEngine } from '../../policy/index.js';
import { LabSource } from '../../source/lab.js';
import { CliError, EXIT_FINDINGS, exitStatus } from '../exit.js';
import { writeOutput } from '../output.js';
import { labCall, labDir, requireUp, type DirOptions } from './common.js';

export interface ProbeOptions extends DirOptions {
  readonly port: string[];
  readonly from: string[];
  readonly to: string[];
  readonly compare?: boolean;
  readonly matrix?: boolean;
  readonly external: boolean;
  readonly timeout?: string;
  readonly output: 'txt' | 'json';
  /** Probe Services too (`--no-services` turns it off). */
  readonly services?: boolean;
}

/** Audit cells listed without --matrix; the summary line counts them all. */
const AUDIT_LINES = 20;

export async function runProbe(opts: ProbeOptions): Promise<void> {
  const dir = labDir(opts);
  let ports: PortSpec[] | undefined;
  try {
    ports = opts.port.length > 0 ? opts.port.flatMap((p) => p.split(',')).map(parsePortSpec) : undefined;
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e));
  }
  const timeoutMs = opts.timeout !== undefined ? Number(opts.timeout) : undefined;
  if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 50)) throw new CliError(`invalid --timeout "${opts.timeout}": milliseconds, at least 50`);
  let state = await requireUp(dir);
  // `--to svc/ns/name` names Services; the other --to peers are pods, nodes or the external host.
  const svcTo = opts.to.flatMap((t) => serviceOfTarget(t) ?? []);
  const peerTo = opts.to.filter((t) => serviceOfTarget(t) === undefined);
  const probePods = opts.to.length === 0 || peerTo.length > 0;
  if (svcTo.length > 0 && opts.services === false) throw new CliError('--to svc/… and --no-services contradict each other');
  // A kube lab without `--services` has nothing that implements Services (no kube-proxy).
  const proxied = await labProxiesServices(dir);
  if (svcTo.length > 0 && !proxied) throw new CliError(`the lab in ${dir} serves its state through the API and its agents program no Service NAT: start it with \`weir lab up --source kube --services\` to probe Services`);
  const probeSvcs = opts.services !== false && proxied && (opts.to.length === 0 || svcTo.length > 0);
  // The lab as the agents see it (the one join, src/source/lab.ts), read with the state the
  // probe then runs against: the engine for --compare, the Services to probe.
  let engine: PolicyEngine | undefined;
  let cluster: Cluster | undefined;
  if (opts.compare && !hasDesired(dir)) throw new CliError(`the lab in ${dir} has no desired manifests (${desiredDir(dir)}): start it with \`weir lab up\` to compare`);
  if (hasDesired(dir) && (opts.compare || probeSvcs)) {
    const lab = new LabSource({ dir });
    const read = await labCall(() => lab.refresh());
    state = read.state ?? state;
    cluster = lab.snapshot().cluster;
    if (opts.compare) engine = new PolicyEngine(cluster);
  }
  const probed = state;
  const empty: ProbeResult = { from: [], to: [], ports: [], cells: [], durationMs: 0 };
  const result = probePods
    ? await labCall(() =>
        probe(probed, {
          ...(ports ? { ports } : {}),
          ...(opts.from.length > 0 ? { from: opts.from } : {}),
          ...(peerTo.length > 0 ? { to: peerTo } : {}),
          external: opts.external,
          ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        }),
      )
    : empty;
  let comparison: Comparison | undefined;
  let final = result;
  let retried = 0;
  if (engine && probePods) {
    comparison = compareProbe(engine, probed, result);
    const slow = timedOutAllowedCells(comparison);
    if (slow.length > 0) {
      // A second, patient look at cells the engine allows but that timed out (one per cell,
      // three times the timeout), so a loaded machine does not report a false disagreement.
      const again = [];
      for (const c of slow) {
        again.push(
          await labCall(() =>
            probe(probed, { from: [c.from], to: [c.to], ports: [{ port: c.port, protocol: c.protocol as PortSpec['protocol'] }], external: true, timeoutMs: 3 * (timeoutMs ?? 1000) }),
          ),
        );
      }
      retried = slow.length;
      final = mergeProbeCells(result, again);
      comparison = compareProbe(engine, probed, final);
    }
  }

  // Services: ClusterIPs from the pods, NodePorts from the external host (probe-services.ts).
  let svcFinal: ProbeResult | undefined;
  let svcComparison: ServiceComparison | undefined;
  if (probeSvcs && cluster) {
    const services = labServices(cluster);
    for (const s of svcTo) if (!services.some((x) => x.key === s)) throw new CliError(`no Service ${s} in the lab`);
    const targets = serviceTargets(probed, services, { ...(svcTo.length > 0 ? { services: svcTo } : {}), ...(ports ? { ports } : {}) });
    const svcOpts = { ...(opts.from.length > 0 ? { from: opts.from } : {}), external: opts.external, ...(timeoutMs !== undefined ? { timeoutMs } : {}) };
    svcFinal = await labCall(() => probeServices(probed, targets, svcOpts));
    if (engine) {
      const eng = engine;
      svcComparison = compareServiceProbe(eng, probed, services, targets, svcFinal);
      const slow = timedOutAllowedServiceCells(svcComparison);
      if (slow.length > 0) {
        const again: ProbeResult[] = [];
        for (const c of slow) {
          const one = targets.filter((t) => t.id === c.to).map((t) => ({ ...t, ports: t.ports.filter((p) => p.port === c.port && p.protocol === c.protocol) }));
          again.push(await labCall(() => probeServices(probed, one, { from: [c.from], timeoutMs: 3 * (timeoutMs ?? 1000) })));
        }
        retried += slow.length;
        svcFinal = mergeProbeCells(svcFinal, again);
        svcComparison = compareServiceProbe(eng, probed, services, targets, svcFinal);
      }
    }
  }

  if (opts.output === 'json') {
    const svcJson = svcFinal ? { services: { ...svcFinal, ...(svcComparison ? { comparison: svcComparison } : {}) } } : {};
    await writeOutput(`${JSON.stringify({ ...final, ...(comparison ? { comparison: comparisonJson(comparison), retried } : {}), ...svcJson }, null, 2)}\n`);
  } else {
    const parts: string[] = [];
    if (probePods) {
      if (opts.matrix && final.cells.length > 0) parts.push(formatReachability(final));
      parts.push(formatProbeSummary(final));
    }
    if (svcFinal) {
      if (opts.matrix && svcFinal.cells.length > 0) parts.push(formatReachability(svcFinal));
      parts.push(`Services: ${svcFinal.cells.length > 0 ? formatProbeSummary(svcFinal) : 'none to probe'}`);
    }
    if (retried > 0) parts.push(`${retried} cell(s) the engine allows timed out and were probed again with a ${3 * (timeoutMs ?? 1000)} ms timeout`);
    if (comparison) parts.push(formatComparison(comparison, opts.matrix ? {} : { auditLimit: AUDIT_LINES }));
    if (svcComparison) parts.push(formatServiceComparison(svcComparison));
    await writeOutput(`${parts.join('\n\n')}\n`);
  }
  if (svcComparison && svcComparison.disagreements.length > 0) exitStatus.raise(EXIT_FINDINGS);
  if (comparison && comparison.disagreements.length > 0) exitStatus.raise(EXIT_FINDINGS);
}

