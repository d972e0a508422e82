// `weir lab status`: nodes with their agents, pods with address, node and identity (the same
// numeric identity the agents and the flow records show), and anything inconsistent.

import { labStatus } from '../../lab/index.js';
import { dnsLogFile, labDnsInfo } from '../../lab/dns-lab.js';
import { agentInfo, agentLogFile, readGeneration, serveInfo, serveLogFile, type AgentInfo } from '../../lab/supervisor.js';
import { PolicyEngine } from '../../policy/index.js';
import { LabSource } from '../../source/lab.js';
import { EXIT_FINDINGS, exitStatus } from '../exit.js';
import { writeOutput } from '../output.js';
import { labCall, labDir, type DirOptions } from './common.js';

export interface StatusOptions extends DirOptions {
  readonly output: 'txt' | 'json';
}

export function labelsText(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

export function agentText(a: AgentInfo | undefined): string {
  if (!a || a.pid === undefined) return 'none';
  if (!a.running) return `pid ${a.pid} NOT RUNNING`;
  const s = a.status;
  if (!s) return `pid ${a.pid}, no apply yet`;
  return `pid ${a.pid}, sync #${s.generation} ${s.lastApplyOk ? 'ok' : `FAILED (${s.error ?? ''})`}, ${s.rules ?? '?'} rules`;
}

export async function runStatus(opts: StatusOptions): Promise<void> {
  const dir = labDir(opts);
  const { state, problems } = await labCall(() => labStatus(dir));
  if (!state || state.status === 'down') {
    const text = state ? `the lab in ${dir} is down` : `no lab in ${dir}`;
    await writeOutput(opts.output === 'json' ? `${JSON.stringify({ dir, status: state?.status ?? 'none' }, null, 2)}\n` : `${text}\n`);
    exitStatus.raise(EXIT_FINDINGS);
    return;
  }
  // The lab as the agents see it (the one join of desired manifests and lab state).
  const lab = new LabSource({ dir });
  await lab.refresh();
  const cluster = lab.snapshot().cluster;
  const engine = new PolicyEngine(cluster);
  const agents = await agentInfo(dir, state.nodes);
  const serve = await serveInfo(dir);
  const dns = await labDnsInfo(dir);
  const recorded = agents.some((a) => a.pid !== undefined);
  const allProblems = [...problems];
  if (serve.pid !== undefined && !serve.running) allProblems.push(`the visibility server (pid ${serve.pid}) is not running: see ${serveLogFile(dir)}`);
  for (const d of dns) if (!d.running) allProblems.push(`the DNS server of ${d.node} (pid ${d.pid}) is not running: see ${dnsLogFile(dir, d.node)}`);
  for (const a of agents) {
    if (a.pid !== undefined && !a.running) allProblems.push(`agent of ${a.node} (pid ${a.pid}) is not running: see ${agentLogFile(dir, a.node)}`);
    else if (a.status && !a.status.lastApplyOk) allProblems.push(`agent of ${a.node}: last apply failed (${a.status.error ?? ''}); the previous ruleset stays in force`);
    else if (recorded && a.pid === undefined) allProblems.push(`no agent recorded for ${a.node}`);
  }
  const policies = cluster.networkPolicies.length + cluster.adminNetworkPolicies.length + (cluster.baselineAdminNetworkPolicy ? 1 : 0);
  const generation = await readGeneration(dir);
  const identity = (key: string): { id: number; labels: Readonly<Record<string, string>> } | undefined => {
    const id = engine.identityOfPod(key);
    return id ? { id: id.id, labels: id.labels } : undefined;
  };
  if (opts.output === 'json') {
    const out = {
      dir,
      prefix: state.prefix,
      status: state.status,
      generation,
      policies,
      enforced: recorded,
      serve: serve.pid !== undefined ? serve : null,
      dns,
      nodes: state.nodes.map((n) => {
        const a = agents.find((x) => x.node === n.name);
        return { name: n.name, netns: n.netns, underlayIp: n.underlayIp, podCidr: n.podCidr, agent: a ?? null };
      }),
      pods: state.pods.map((p) => ({ key: p.key, ip: p.ip, node: p.node, netns: p.netns, workload: p.workload, labels: p.labels, identity: identity(p.key) ?? null, serverPid: p.serverPid ?? null })),
      external: { ip: state.external.ip, node: state.external.node, netns: state.external.netns },
      problems: allProblems,
    };
    await writeOutput(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    const lines: string[] = [];
    lines.push(
      `lab ${dir}: ${state.status}, prefix ${state.prefix}, ${state.nodes.length} nodes, ${state.pods.length} pods, ${policies} policies (desired generation ${generation})` +
        (recorded ? '' : ' — no agents: policies are NOT enforced'),
    );
    lines.push(
      serve.pid === undefined
        ? 'visibility: no server (start one with `weir serve`)'
        : serve.running
          ? `visibility: ${serve.url ?? '?'}/ (weir serve pid ${serve.pid})`
          : `visibility: weir serve pid ${serve.pid} NOT RUNNING`,
    );
    lines.push(dns.length === 0 ? 'dns: no lab DNS (`lab up --no-dns`)' : `dns: ${dns.map((d) => `${d.node} pid ${d.pid}${d.running ? '' : ' NOT RUNNING'}`).join(', ')} on 169.254.20.10`);
    lines.push('');
    lines.push(table([['NODE', 'NETNS', 'ADDRESS', 'POD CIDR', 'AGENT'], ...state.nodes.map((n) => [n.name, n.netns, n.underlayIp, n.podCidr, agentText(agents.find((a) => a.node === n.name))])]));
    lines.push('');
    lines.push(
      table([
        ['POD', 'IP', 'NODE', 'IDENTITY', 'LABELS'],
        ...state.pods.map((p) => {
          const id = identity(p.key);
          return [p.key, p.ip, p.node, id ? `#${id.id}` : '-', labelsText(id?.labels ?? p.labels)];
        }),
        ['external', state.external.ip, state.external.node, '-', `(${state.external.cidr})`],
      ]),
    );
    if (allProblems.length > 0) {
      lines.push('');
      lines.push('problems:');
      for (const p of allProblems) lines.push(`  ${p}`);
    }
    await writeOutput(`${lines.join('\n')}\n`);
  }
  if (allProblems.length > 0) exitStatus.raise(EXIT_FINDINGS);
}

