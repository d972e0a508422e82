// `weir lab down`: the flow server and the agents first (their children run inside the lab's
// namespaces), then every namespace; `--purge` also forgets addresses, desired state and flows.

import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { REASONS_FILE } from '../../agent/status.js';
import { removeLbFiles } from '../../agent/lb-files.js';
import { removeDesired } from '../../lab/desired.js';
import { DEFAULT_PREFIX, labDown, preflight } from '../../lab/index.js';
import { stopAgents, stopServe } from '../../lab/supervisor.js';
import { KUBE_LAB_FILE, stopLabApiServer } from '../../lab/kube.js';
import { stopLabDns } from '../../lab/dns-lab.js';
import { readState } from '../../lab/index.js';
import { writeOutput } from '../output.js';
import { labCall, labDir, type DirOptions } from './common.js';

export interface DownOptions extends DirOptions {
  readonly force?: boolean;
  readonly purge?: boolean;
}

export async function runDown(opts: DownOptions): Promise<void> {
  const dir = labDir(opts);
  await preflight();
  // First: its conntrack children run inside the lab's namespaces.
  const served = await stopServe(dir);
  const agents = await stopAgents(dir);
  // The balancing status files describe running agents; the drains are the user's (kept, unless --purge).
  await removeLbFiles(dir, opts.purge === true);
  const state = await readState(dir).catch(() => undefined);
  const dns = await stopLabDns(dir, state?.prefix ?? opts.prefix ?? DEFAULT_PREFIX);
  const api = await stopLabApiServer(dir, { forget: true });
  const result = await labCall(() =>
    labDown({ dir, ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}), force: opts.force === true, purge: opts.purge === true }),
  );
  if (opts.purge) {
    await removeDesired(dir);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) if (/^agent-.*\.(json|pid)$/.test(n) || /^flows\.db(-wal|-shm)?$/.test(n) || n === REASONS_FILE || n === 'kubeconfig' || n === KUBE_LAB_FILE) await rm(join(dir, n), { force: true });
    await rm(join(dir, 'apiserver'), { recursive: true, force: true });
  }
  await writeOutput(
    `lab down in ${dir}: ${result.removedNetns.length} namespaces removed, ${result.stoppedPids.length} processes, ${agents.length} agents, ${dns.length} DNS servers${served !== undefined ? ' and the visibility server' : ''}${api !== undefined ? ' and the API server' : ''} stopped${opts.purge ? ', state purged' : ''}\n`,
  );
}

