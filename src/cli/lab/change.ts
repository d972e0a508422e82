// What `lab apply` and `lab delete` share: validate the next desired set, bring the lab's pods
// there, write the desired folder, bump the generation and wait until every agent enforces it.

import { join } from 'node:path';
import { buildDesired, bumpGeneration, writeDesired } from '../../lab/desired.js';
import { labApply, labCluster, planLab, readState } from '../../lab/index.js';
import { labDnsInfo, syncLabDns } from '../../lab/dns-lab.js';
import { agentInfo, waitForAgents, type SettledAgent } from '../../lab/supervisor.js';
import { hasErrors } from '../../model/diagnostics.js';
import { CliError } from '../exit.js';
import { isKubeLab, publishLab } from '../../lab/kube.js';
import { labCall, printDiagnostics, requireUp, type DirOptions } from './common.js';

export interface ChangeOptions extends DirOptions {
  readonly timeout?: string;
}

/** Validates the next desired set, applies pods to the lab, writes the folder, waits for the agents. */
export async function changeDesired(dir: string, next: Map<string, string>, quiet: boolean, timeoutMs: number): Promise<{ pods: string; agents: SettledAgent[] | undefined }> {
  const state = await requireUp(dir);
  // A lab with agents must have all of them: a change only some nodes enforce is refused
  // before anything is written.
  const info = await agentInfo(dir, state.nodes);
  const enforced = info.some((a) => a.pid !== undefined);
  const dead = info.filter((a) => !a.running).map((a) => a.node);
  if (enforced && dead.length > 0) {
    throw new CliError(`no agent is running for ${dead.join(', ')} (see ${join(dir, 'logs')}): nothing was changed; restart the lab with \`weir lab down\` and \`weir lab up\``);
  }
  const built = buildDesired(dir, next);
  if (hasErrors(built.diagnostics)) {
    printDiagnostics(
      built.diagnostics.filter((d) => d.severity === 'error'),
      quiet,
    );
    throw new CliError('the resulting manifest set is invalid: nothing was changed');
  }
  // The lab validates pod changes (addresses, pools) before it changes anything: ask first,
  // so a refused change leaves the desired folder as it was too.
  await labCall(async () => {
    planLab({ ...built.cluster, nodes: state.nodes.map((n) => ({ name: n.name, labels: n.labels })) }, { nodes: state.nodes.length, dir, prefix: state.prefix }, state);
  });
  // Policies first: a pod that is added below is then enforced by the new policies from
  // the agents' next sync on, never by a stale set.
  await writeDesired(dir, next);
  const applied = await labCall(() => labApply(dir, built.cluster, { onDiagnostics: (d) => printDiagnostics(d, quiet) }));
  // The lab DNS (when `lab up` started it) serves the Services of the new set at once.
  const after = await readState(dir);
  if (after && (await labDnsInfo(dir)).length > 0) await labCall(() => syncLabDns(after, labCluster(built.cluster, after)));
  // A lab served through the Kubernetes API: the change goes through the API, and the agents
  // report the API's resourceVersion they have applied.
  const generation = after && isKubeLab(dir) ? await labCall(() => publishLab(dir, after, next)) : await bumpGeneration(dir);
  const since = Date.now();
  const pods = `pods: ${applied.added.length} added, ${applied.removed.length} removed, ${applied.relabelled.length} relabelled`;
  if (!enforced) return { pods, agents: undefined };
  const agents = await labCall(() => waitForAgents(dir, state.nodes, { generation, since, timeoutMs }));
  return { pods, agents };
}

export function enforcedText(agents: SettledAgent[] | undefined): string {
  if (!agents) return 'no agents: policies are NOT enforced';
  const worst = Math.max(0, ...agents.map((a) => a.ms));
  return `enforced on ${agents.length} node${agents.length === 1 ? '' : 's'} within ${worst} ms`;
}

export function timeoutOf(opts: ChangeOptions): number {
  if (opts.timeout === undefined) return 15_000;
  const n = Number(opts.timeout);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`invalid --timeout "${opts.timeout}": seconds`);
  return n * 1000;
}

