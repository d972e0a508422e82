// `weir lab up`: check the manifests, record them as the desired state, build the lab with one
// enforcing agent per node (each in force before any pod is attached), start the flow server.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { bumpGeneration, readObjects, writeDesired } from '../../lab/desired.js';
import { labCluster, labUp, preflight, readState } from '../../lab/index.js';
import { startLabDns, stopLabDns } from '../../lab/dns-lab.js';
import { agentHooks, agentInfo, serveLogFile, startServe, stopAgents, stopServe, waitForAgents, weirCommand } from '../../lab/supervisor.js';
import { kubeAgentHooks, labKubeconfig, publishLab, startLabApiServer, stopLabApiServer } from '../../lab/kube.js';
import { listNetns } from '../../lab/topology.js';
import { NODE_DNS_IP } from '../../lab/dns.js';
import { CliError, EXIT_FINDINGS, exitStatus } from '../exit.js';
import { countErrors, loadInput } from '../input.js';
import { writeOutput } from '../output.js';
import { defaultPaths, dirFlag, labCall, labDir, printDiagnostics, type DirOptions, type GlobalOptions } from './common.js';

export interface UpOptions extends DirOptions {
  readonly nodes?: string;
  readonly agent: boolean;
  readonly strict?: boolean;
  /** Start `weir serve` for the lab (`--no-serve` turns it off). */
  readonly serve: boolean;
  readonly servePort?: string;
  readonly alerts?: string;
  /** Where the agents read the lab: its files (default) or the Kubernetes API (`kube`). */
  readonly source?: string;
  /** Start the lab DNS (`--no-dns` turns it off). */
  readonly dns?: boolean;
  /** Agents ship their flows to this server (`weir serve --cluster`) instead of a lab-local `weir serve`. */
  readonly server?: string;
  readonly tokenFile?: string;
  /** `--source kube`: the agents program Service NAT (`weir agent --services`). */
  readonly services?: boolean;
}

export function parseServePort(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new CliError(`invalid --serve-port "${text}": expected a port number 0-65535`);
  return n;
}

export function parseNodes(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`invalid --nodes "${text}": expected a whole number ≥ 1`);
  return n;
}

export async function isUp(dir: string): Promise<boolean> {
  const state = await readState(dir).catch(() => undefined);
  if (!state || state.status === 'down') return false;
  const existing = await listNetns();
  return state.nodes.some((n) => existing.has(n.netns));
}

export async function runUp(paths: string[], opts: UpOptions, cmd: Command): Promise<void> {
  const quiet = cmd.optsWithGlobals<GlobalOptions>().quiet === true;
  const nodes = parseNodes(opts.nodes);
  const servePort = parseServePort(opts.servePort);
  if (opts.alerts !== undefined && !existsSync(opts.alerts)) throw new CliError(`--alerts: no such file ${opts.alerts}`);
  const dir = labDir(opts);
  if (opts.source !== undefined && opts.source !== 'files' && opts.source !== 'kube') throw new CliError(`invalid --source "${opts.source}": expected files or kube`);
  const kube = opts.source === 'kube';
  if (opts.services && !kube) throw new CliError('--services is for --source kube (the agents of a files lab always program its Services)');
  if ((opts.server === undefined) !== (opts.tokenFile === undefined)) throw new CliError('--server and --token-file go together: the agents ship flows to that server with its token');
  if (opts.tokenFile !== undefined && !existsSync(opts.tokenFile)) throw new CliError(`--token-file: no such file ${opts.tokenFile}`);
  const ship = opts.server !== undefined && opts.tokenFile !== undefined ? ['--server', opts.server, '--token-file', resolve(opts.tokenFile)] : [];
  // Shipping agents report to that server; a lab-local one following the nodes would count twice.
  const serve = opts.serve && ship.length === 0;
  await preflight();
  const sources = paths.length > 0 ? paths : defaultPaths();
  const input = await loadInput(sources, { quiet });
  if (input.hasErrors) {
    const n = countErrors(input.diagnostics);
    throw new CliError(`${n} error${n === 1 ? '' : 's'} in the manifests: nothing was created (fix them, \`weir lint\` helps)`);
  }
  if (await isUp(dir)) throw new CliError(`a lab is already up in ${dir}: run \`weir lab down\` first (or \`weir lab apply\` to change it)`);
  if (opts.agent) await stopAgents(dir); // leftovers of a lab that was never taken down
  if (serve) await stopServe(dir);
  await stopLabDns(dir);

  const objects = await readObjects(sources);
  await writeDesired(dir, new Map(objects.map((o) => [o.file, o.text])));
  await bumpGeneration(dir);

  const started = Date.now();
  let apiLine: string | undefined;
  const state = await labCall(async () => {
    try {
      // --source kube: the lab's API server first; the hooks seed it and start agents against it.
      const api = kube ? (await stopLabApiServer(dir, { forget: true }), await startLabApiServer(dir, { fresh: true })) : undefined;
      if (api) apiLine = `kubernetes API: ${api.url} (kubectl --kubeconfig ${labKubeconfig(dir)} get pods -A)`;
      const hooks = kube ? kubeAgentHooks(dir, { command: weirCommand(), strict: opts.strict, agents: opts.agent, agentArgs: ship, services: opts.services === true }) : opts.agent ? agentHooks(dir, { command: weirCommand(), strict: opts.strict, agentArgs: ship }) : {};
      const up = await labUp(input.cluster, {
        dir,
        ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}),
        ...(nodes !== undefined ? { nodes } : {}),
    ...hooks,
        onDiagnostics: (d) => printDiagnostics(d, quiet),
      });
      if (kube) {
        // The state as built, through the API; up returns once every agent enforces it.
        const since = Date.now();
        const generation = await publishLab(dir, up);
        if (opts.agent) await waitForAgents(dir, up.nodes, { generation, since, timeoutMs: 60_000 });
      }
      return up;
    } catch (e) {
      // labUp removed its namespaces; the agents it had started are ours to stop.
      await stopAgents(dir);
      if (kube) await stopLabApiServer(dir, { forget: true });
      throw e;
    }
  });
  const agents = opts.agent ? await agentInfo(dir, state.nodes) : [];
  let dnsLine = 'no lab DNS (--no-dns)';
  if (opts.dns !== false) {
    try {
      await startLabDns(state, labCluster(input.cluster, state));
      dnsLine = `dns: name.ns.svc.cluster.local answered on ${NODE_DNS_IP} in every node (try: weir lab exec${dirFlag(opts)} NS/POD -- getent hosts NAME.NS)`;
    } catch (e) {
      // As with the visibility server: the lab is up and enforced; say what failed, exit 1.
      process.stderr.write(`weir: error: the lab DNS did not start: ${e instanceof Error ? e.message : String(e)} (the lab is up)\n`);
      await stopLabDns(dir);
      dnsLine = 'no lab DNS: it failed to start (see above)';
      exitStatus.raise(EXIT_FINDINGS);
    }
  }
  let serveLine = 'no visibility server (--no-serve): start one with `weir serve' + (opts.dir !== undefined ? ` --lab-dir ${resolve(opts.dir)}` : '') + '`';
  if (ship.length > 0) serveLine = `agents ship flows to ${opts.server ?? ''} (weir status --server ${opts.server ?? ''} --token-file ${opts.tokenFile ?? ''})`;
  if (serve) {
    try {
      const start = (port: number | undefined) =>
        startServe(dir, { command: weirCommand(), ...(port !== undefined ? { port } : {}), ...(opts.alerts !== undefined ? { alertsFile: resolve(opts.alerts) } : {}) });
      // The default port may be taken (another lab's server): then any free port, printed below.
      const served = await start(servePort).catch((e: unknown) => {
        if (servePort === undefined && e instanceof Error && /port is in use/.test(e.message)) return start(0);
        throw e;
      });
      serveLine = `dashboard: ${served.url}/ (weir serve pid ${served.pid}; weir flows --server ${served.url})`;
    } catch (e) {
      // The lab itself is up and enforced: say what failed, keep it, exit 1.
      process.stderr.write(`weir: error: ${e instanceof Error ? e.message : String(e)} (the lab is up; see ${serveLogFile(dir)})\n`);
      serveLine = 'no visibility server: it failed to start (see above)';
      exitStatus.raise(EXIT_FINDINGS);
    }
  }
  const lines = [
    `lab up in ${dir} (${Date.now() - started} ms): ${state.nodes.length} nodes, ${state.pods.length} pods, external host ${state.external.ip}`,
    opts.agent
      ? `agents: ${agents.map((a) => `${a.node} pid ${a.pid ?? '?'} (${a.status?.rules ?? '?'} rules)`).join(', ')}`
      : 'no agents (--no-agent): policies are NOT enforced, every pod reaches every pod',
    dnsLine,
    serveLine,
    ...(apiLine ? [apiLine] : []),
    `next: weir lab status${dirFlag(opts)} | weir lab probe${dirFlag(opts)} | weir lab down${dirFlag(opts)}`,
  ];
  await writeOutput(`${lines.join('\n')}\n`);
}

