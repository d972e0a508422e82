// A scratch lab instance for a root test: its own prefix and directory, and a teardown that
// stops the visibility server and the agents by their recorded pids, takes the lab down with
// --force, kills what is left inside the prefix's namespaces and removes the directory —
// registered on the test context, so it runs whatever the test does.

import type { TestContext } from 'node:test';
import { labDown, probe, readState, type LabState } from '../../src/lab/index.js';
import { stopAgents, stopServe } from '../../src/lab/supervisor.js';
import { stopLabDns } from '../../src/lab/dns-lab.js';
import { cleanupPrefix, removeDir, tempLabDir, testPrefix } from './netns.js';

export interface ScratchLab {
  readonly prefix: string;
  readonly dir: string;
}

export async function teardownLab(prefix: string, dir: string): Promise<void> {
  await stopServe(dir).catch(() => undefined);
  await stopAgents(dir).catch(() => undefined);
  await stopLabDns(dir, prefix).catch(() => undefined);
  const state = await readState(dir).catch(() => undefined);
  const pids = state ? [...state.pods.map((p) => p.serverPid), state.external.serverPid].filter((p): p is number => p !== undefined) : [];
  await labDown({ dir, prefix, force: true }).catch(() => undefined);
  await cleanupPrefix(prefix, pids);
  await removeDir(dir);
}

export async function scratchLab(t: TestContext): Promise<ScratchLab> {
  const prefix = testPrefix();
  const dir = await tempLabDir();
  t.after(() => teardownLab(prefix, dir));
  return { prefix, dir };
}

/** One TCP connection attempt in the lab (a probe with one cell, 500 ms timeout: at most one SYN), `from` pod to `to` pod on `port`: did it connect? */
export async function connect(state: LabState, from: string, to: string, port: number): Promise<boolean> {
  const r = await probe(state, { from: [from], to: [to], ports: [{ port, protocol: 'TCP' }], timeoutMs: 500, external: false });
  if (r.cells.length !== 1) throw new Error(`expected one cell for ${from} -> ${to}:${port}, got ${r.cells.length}`);
  return r.cells[0]?.ok === true;
}
