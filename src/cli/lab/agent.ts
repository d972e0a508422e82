// `weir agent --lab-dir DIR --node NAME`: the per-node enforcement agent `lab up` starts.

import { resolve } from 'node:path';
import { runAgent } from '../../lab/agent.js';
import { EXIT_FINDINGS, exitStatus } from '../exit.js';

export interface AgentOptions {
  readonly labDir: string;
  readonly node: string;
  readonly strict?: boolean;
  readonly manifests?: string[];
}

export async function runAgentCommand(opts: AgentOptions): Promise<void> {
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
      signal: controller.signal,
    });
    if (!controller.signal.aborted && status && !status.lastApplyOk) exitStatus.raise(EXIT_FINDINGS);
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}

