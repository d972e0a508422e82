// `weir lab probe`: real TCP connects and UDP request/replies between every pair of peers.
// By default a short summary (cells, reachable, disagreements, audit changes); the per-port
// matrices with `--matrix`; with `--compare`, every disagreeing cell with the engine's
// explanation (src/lab/compare.ts).

import { compareProbe, comparisonJson, formatComparison, mergeProbeCells, timedOutAllowedCells, type Comparison } from '../../lab/compare.js';
import { desiredDir, hasDesired } from '../../lab/desired.js';
import { formatProbeSummary, formatReachability, parsePortSpec, probe, type PortSpec } from '../../lab/index.js';
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
  // --compare: the engine of the lab as the agents see it (the one join, src/source/lab.ts),
  // read with the state the probe then runs against.
  let engine: PolicyEngine | undefined;
  if (opts.compare) {
    if (!hasDesired(dir)) throw new CliError(`the lab in ${dir} has no desired manifests (${desiredDir(dir)}): start it with \`weir lab up\` to compare`);
    const lab = new LabSource({ dir });
    const read = await labCall(() => lab.refresh());
    state = read.state ?? state;
    engine = new PolicyEngine(lab.snapshot().cluster);
  }
  const probed = state;
  const result = await labCall(() =>
    probe(probed, {
      ...(ports ? { ports } : {}),
      ...(opts.from.length > 0 ? { from: opts.from } : {}),
      ...(opts.to.length > 0 ? { to: opts.to } : {}),
      external: opts.external,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    }),
  );
  let comparison: Comparison | undefined;
  let final = result;
  let retried = 0;
  if (engine) {
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
  if (opts.output === 'json') {
    await writeOutput(`${JSON.stringify({ ...final, ...(comparison ? { comparison: comparisonJson(comparison), retried } : {}) }, null, 2)}\n`);
  } else {
    const parts: string[] = [];
    if (opts.matrix && final.cells.length > 0) parts.push(formatReachability(final));
    parts.push(formatProbeSummary(final));
    if (retried > 0) parts.push(`${retried} cell(s) the engine allows timed out and were probed again with a ${3 * (timeoutMs ?? 1000)} ms timeout`);
    if (comparison) parts.push(formatComparison(comparison, opts.matrix ? {} : { auditLimit: AUDIT_LINES }));
    await writeOutput(`${parts.join('\n\n')}\n`);
  }
  if (comparison && comparison.disagreements.length > 0) exitStatus.raise(EXIT_FINDINGS);
}

