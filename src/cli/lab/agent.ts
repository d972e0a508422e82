// `weir agent --lab-dir DIR --node NAME`: the per-node enforcement agent `lab up` starts.

import { resolve } from 'node:path';
import { runAgent } from '../../lab/agent.js';
import type { AgentFlowsOptions } from '../../lab/agent-flows.js';
import { CliError, EXIT_FINDINGS, exitStatus } from '../exit.js';
import { packageVersion } from '../program.js';
import { readInputFile, readTokenFile } from '../serve.js';

export interface AgentOptions {
  readonly labDir: string;
  readonly node: string;
  readonly strict?: boolean;
  readonly manifests?: string[];
  /** Flow shipping (src/lab/agent-flows.ts). */
  readonly server?: string;
  readonly tokenFile?: string;
  readonly ca?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
  readonly bufferDir?: string;
  readonly bufferMib?: string;
  readonly queryPort?: string;
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
  const port = opts.queryPort === undefined ? undefined : Number(opts.queryPort);
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
  };
}

export async function runAgentCommand(opts: AgentOptions): Promise<void> {
  const flows = agentFlowsOptions(opts);
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    const status = await runAgent({
      labDir: resolve(opts.labDir),
      node: opts.node,
      strict: opts.strict === true,
      ...(opts.manifests ? { manifests: opts.manifests } : {}),
      ...(flows ? { flows } : {}),
      signal: controller.signal,
    });
    if (!controller.signal.aborted && status && !status.lastApplyOk) exitStatus.raise(EXIT_FINDINGS);
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}

