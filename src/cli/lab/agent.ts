// `weir agent`: the per-node enforcement agent. Two sources:
//   --lab-dir DIR --node NAME                          the lab's agent (`lab up` starts one per node)
//   --node NAME (--kubeconfig FILE | --in-cluster)     a Kubernetes node, policy-only beside the CNI

import { resolve } from 'node:path';
import { runAgent } from '../../lab/agent.js';
import { AgentConfigError, runKubeAgent } from '../../agent/kube.js';
import { DEFAULT_HEALTH_PORT } from '../../agent/health.js';
import { readAgentSettings, type AgentSettings } from '../../agent/settings.js';
import { CliError, EXIT_FINDINGS, exitStatus } from '../exit.js';
import { packageVersion } from '../program.js';
import { kubeFlows, type AgentFlowsOptions } from '../../flows/agent-flows.js';
import { readInputFile, readTokenFile } from '../serve.js';

export interface AgentOptions {
  readonly labDir?: string;
  readonly node: string;
  readonly strict?: boolean;
  readonly manifests?: string[];
  readonly kubeconfig?: string;
  readonly context?: string;
  readonly inCluster?: boolean;
  readonly podCidr?: string[];
  readonly allowUnknownPods?: boolean;
  readonly healthAddress?: string;
  readonly health?: boolean;
  readonly netns?: string;
  readonly statusDir?: string;
  readonly watchdog?: string;
  readonly config?: string;
  /** Kubernetes: program Service NAT in place of kube-proxy (src/agent/kube-services.ts). */
  readonly services?: boolean;
  /** Flow shipping (src/flows/agent-flows.ts). */
  readonly server?: string;
  readonly tokenFile?: string;
  readonly ca?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
  readonly bufferDir?: string;
  readonly bufferMib?: string;
  readonly queryPort?: string;
  readonly queryAddress?: string;
}

/** `--server` and its companions → shipping options; undefined without `--server`. */
export function agentFlowsOptions(opts: AgentOptions): AgentFlowsOptions | undefined {
  if (opts.server === undefined) {
    for (const [flag, v] of [['--token-file', opts.tokenFile], ['--client-cert', opts.clientCert], ['--buffer-dir', opts.bufferDir]] as const) {
      if (v !== undefined) throw new CliError(`${flag} is about shipping flows: give --server URL too`);
    }
    return undefined;
  }
  if (!URL.canParse(opts.server) || !['http:', 'https:'].includes(new URL(opts.server).protocol)) throw new CliError(`--server: must be an http:// or https:// URL, got "${opts.server}"`);
  if (opts.tokenFile === undefined) throw new CliError('--server needs --token-file: the server takes flows only with its token');
  if ((opts.clientCert === undefined) !== (opts.clientKey === undefined)) throw new CliError('--client-cert and --client-key go together (mutual TLS)');
  const mib = opts.bufferMib === undefined ? undefined : Number(opts.bufferMib);
  if (mib !== undefined && (!Number.isFinite(mib) || mib <= 0)) throw new CliError(`--buffer-size: expected a size in MiB (> 0), got "${opts.bufferMib}"`);
  if (opts.queryPort !== undefined && opts.queryAddress !== undefined) throw new CliError('--query-port and --query-address: give one (--query-address HOST:PORT includes the port)');
  const query = opts.queryAddress !== undefined ? hostPort('--query-address', opts.queryAddress, '0.0.0.0:9792') : undefined;
  const port = query ? query.port : opts.queryPort === undefined ? undefined : Number(opts.queryPort);
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new CliError(`--query-port: expected a port number 0-65535, got "${opts.queryPort}"`);
  const tls = {
    ...(opts.ca !== undefined ? { ca: readInputFile('--ca', opts.ca) } : {}),
    ...(opts.clientCert !== undefined ? { cert: readInputFile('--client-cert', opts.clientCert) } : {}),
    ...(opts.clientKey !== undefined ? { key: readInputFile('--client-key', opts.clientKey) } : {}),
  };
  return {
    server: opts.server,
    token: readTokenFile(opts.tokenFile),
    version: packageVersion(),
    ...(Object.keys(tls).length > 0 ? { tls } : {}),
    ...(opts.bufferDir !== undefined ? { bufferDir: resolve(opts.bufferDir) } : {}),
    ...(mib !== undefined ? { maxBufferBytes: Math.round(mib * 1024 * 1024) } : {}),
    ...(port !== undefined ? { queryPort: port } : {}),
    ...(query ? { queryHost: query.host } : {}),
  };
}

function hostPort(flag: string, text: string, example: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*)\]?:)?(\d+)$/.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) throw new CliError(`${flag} ${text}: expected PORT or HOST:PORT (e.g. ${example})`);
  return { host: m[1] || '127.0.0.1', port };
}

function healthAddress(text: string | undefined): { host: string; port: number } {
  if (text === undefined) return { host: '127.0.0.1', port: DEFAULT_HEALTH_PORT };
  return hostPort('--health-address', text, '127.0.0.1:9791');
}

function watchdogMs(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 1) throw new CliError(`--watchdog ${text}: expected seconds ≥ 1`);
  return n * 1000;
}

export async function runAgentCommand(given: AgentOptions): Promise<void> {
  let settings: AgentSettings = {};
  if (given.config !== undefined) {
    if (given.labDir !== undefined) throw new CliError('weir agent: --config is for a Kubernetes node (with --kubeconfig or --in-cluster)');
    settings = await readAgentSettings(resolve(given.config)).catch((e: unknown) => {
      throw new CliError(`weir agent: --config ${(e as Error).message}`);
    });
  }
  // Flags win over the file.
  const opts: AgentOptions = {
    ...given,
    ...(given.allowUnknownPods === undefined && given.podCidr === undefined && settings.failClosedUntilSynced === false ? { allowUnknownPods: true } : {}),
    ...(given.podCidr === undefined && settings.podCIDRs && settings.failClosedUntilSynced !== false ? { podCidr: settings.podCIDRs } : {}),
    ...(given.healthAddress === undefined && (settings.healthPort !== undefined || settings.healthHost !== undefined) ? { healthAddress: `${settings.healthHost ?? '127.0.0.1'}:${settings.healthPort ?? DEFAULT_HEALTH_PORT}` } : {}),
    ...(given.watchdog === undefined && settings.watchdogSeconds !== undefined ? { watchdog: String(settings.watchdogSeconds) } : {}),
    ...(given.server === undefined && settings.server !== undefined ? { server: settings.server } : {}),
    ...(given.services === undefined && settings.services !== undefined ? { services: settings.services } : {}),
  };
  const kube = opts.kubeconfig !== undefined || opts.inCluster === true;
  if (opts.labDir !== undefined && kube) throw new CliError('weir agent: give either --lab-dir (the lab) or --kubeconfig/--in-cluster (a Kubernetes node), not both');
  if (opts.labDir === undefined && !kube) throw new CliError('weir agent: give --lab-dir DIR (the lab) or --kubeconfig FILE / --in-cluster (a Kubernetes node)');
  if (opts.kubeconfig !== undefined && opts.inCluster) throw new CliError('weir agent: --kubeconfig and --in-cluster exclude each other');
  if (opts.services && opts.labDir !== undefined) throw new CliError('weir agent: --services is for a Kubernetes node (the lab agent always programs its Services)');
  if (opts.allowUnknownPods && opts.podCidr) throw new CliError('weir agent: --pod-cidr names the ranges where unknown pods fail closed; with --allow-unknown-pods it means nothing');
  const flows = agentFlowsOptions(opts);
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    const status =
      opts.labDir !== undefined
        ? await runAgent({
            labDir: resolve(opts.labDir),
            node: opts.node,
            strict: opts.strict === true,
            ...(opts.manifests ? { manifests: opts.manifests } : {}),
            ...(flows ? { flows } : {}),
            signal: controller.signal,
          })
        : await runKubeAgent({
            node: opts.node,
            auth: opts.inCluster ? { kind: 'in-cluster' } : { kind: 'kubeconfig', ...(opts.kubeconfig ? { path: resolve(opts.kubeconfig) } : {}), ...(opts.context ? { context: opts.context } : {}) },
            version: packageVersion(),
            ...(opts.podCidr ? { podCidrs: opts.podCidr } : {}),
            allowUnknownPods: opts.allowUnknownPods === true,
            health: opts.health === false ? false : healthAddress(opts.healthAddress),
            ...(opts.netns ? { netns: opts.netns } : {}),
            strict: opts.strict === true,
            ...(opts.statusDir ? { statusDir: resolve(opts.statusDir) } : {}),
            ...(opts.watchdog !== undefined ? { timing: { watchdogMs: watchdogMs(opts.watchdog) } } : {}),
            ...(opts.services ? { services: flows ? { server: { server: flows.server, token: flows.token, ...(flows.tls ? { tls: flows.tls } : {}) } } : {} } : {}),
            ...(flows ? { extension: kubeFlows({ ...flows, node: opts.node, ...(opts.netns ? { netns: opts.netns } : {}), ...(opts.statusDir ? { statusDir: resolve(opts.statusDir) } : {}), log: (l) => process.stderr.write(`${l}\n`) }) } : {}),
            signal: controller.signal,
          }).catch((e: unknown) => {
            if (e instanceof AgentConfigError) throw new CliError(`weir agent: ${e.message}`);
            throw e;
          });
    if (!controller.signal.aborted && status && !status.lastApplyOk) exitStatus.raise(EXIT_FINDINGS);
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}
