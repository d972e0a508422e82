// Lab processes: one small Node server per pod (and one for the external host), started
// detached inside the pod's namespace so they outlive the `weir lab up` command, and
// stopped by PID — after checking that the PID still is a weir lab process.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { LabPort } from './state.js';

/**
 * Finds a plain-JS asset shipped next to this module (`src/lab/*.mjs`); when running from
 * the compiled `dist/src/lab`, falls back to the source tree, since tsc does not copy .mjs.
 */
export function assetPath(name: string): string {
  const candidates = [new URL(`./${name}`, import.meta.url), new URL(`../../../src/lab/${name}`, import.meta.url)];
  for (const url of candidates) {
    const path = fileURLToPath(url);
    if (existsSync(path)) return path;
  }
  throw new Error(`weir lab asset ${name} not found next to ${fileURLToPath(import.meta.url)}`);
}

export const SERVER_SCRIPT = 'server.mjs';
export const PROBER_SCRIPT = 'prober.mjs';
const READY_TIMEOUT_MS = 10_000;

/**
 * Node flags for the servers: a small heap is plenty for a few sockets (measured RSS is
 * ~45 MB per server either way; the floor is V8 and libuv, not the heap).
 */
const NODE_FLAGS = ['--max-old-space-size=24', '--max-semi-space-size=1'];

export interface ServerSpec {
  readonly netns: string;
  /** Identity written in every reply (`ns/pod` or `external`). */
  readonly identity: string;
  readonly ports: readonly LabPort[];
  /** Directory for the server's log file. */
  readonly logDir: string;
  /** Directory of the control files that make servers slow or flaky (src/lab/behaviour.ts). */
  readonly controlDir?: string;
}

/** Starts a server and resolves with its PID once every port listens. */
export async function startServer(spec: ServerSpec): Promise<number> {
  await mkdir(spec.logDir, { recursive: true });
  const log = await open(join(spec.logDir, `${spec.netns}.log`), 'a');
  const config = JSON.stringify({
    name: spec.identity,
    ports: spec.ports.map((p) => ({ port: p.port, protocol: p.protocol })),
    ...(spec.controlDir !== undefined ? { control: join(spec.controlDir, `${spec.netns}.json`) } : {}),
  });
  try {
    // `ip netns exec` execs the command, so the PID we get is the server's own.
    const child = spawn('ip', ['netns', 'exec', spec.netns, process.execPath, ...NODE_FLAGS, assetPath(SERVER_SCRIPT), config], {
      detached: true,
      stdio: ['ignore', 'pipe', log.fd],
    });
    const pid = child.pid;
    const stdout = child.stdout;
    if (pid === undefined || stdout === null) throw new Error(`cannot start the server of ${spec.identity}`);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`server of ${spec.identity} did not become ready within ${READY_TIMEOUT_MS / 1000} s`));
      }, READY_TIMEOUT_MS);
      stdout.setEncoding('utf8');
      stdout.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('\n')) {
          clearTimeout(timer);
          if (out.startsWith('ready')) resolve();
          else reject(new Error(`server of ${spec.identity} failed: ${out.replace(/^error /, '').trim()}`));
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`server of ${spec.identity} exited with code ${code ?? 'signal'} before it was ready (see ${spec.logDir})`));
      });
    });
    stdout.destroy();
    child.removeAllListeners('exit');
    child.unref();
    return pid;
  } finally {
    await log.close();
  }
}

async function procStat(pid: number): Promise<string | undefined> {
  try {
    return await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
}

/** True when `pid` runs (zombies count as gone). */
export async function isAlive(pid: number): Promise<boolean> {
  const stat = await procStat(pid);
  if (stat === undefined) return false;
  const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  return state !== 'Z' && state !== 'X';
}

/** True when `pid` is a weir lab server (guards against a recycled PID). */
export async function isLabServer(pid: number): Promise<boolean> {
  try {
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.split('\0').some((arg) => arg.endsWith(`/${SERVER_SCRIPT}`));
  } catch {
    return false;
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone (bounded). */
export async function stopPid(pid: number, graceMs = 1000): Promise<void> {
  const signal = (sig: NodeJS.Signals): void => {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  };
  if (!(await isAlive(pid))) return;
  signal('SIGTERM');
  const step = 20;
  for (let waited = 0; waited < graceMs; waited += step) {
    if (!(await isAlive(pid))) return;
    await sleep(step);
  }
  signal('SIGKILL');
  for (let waited = 0; waited < 2000; waited += step) {
    if (!(await isAlive(pid))) return;
    await sleep(step);
  }
}

/** Stops a recorded server PID, only if it still is a lab server. */
export async function stopServer(pid: number | undefined): Promise<void> {
  if (pid === undefined || !(await isLabServer(pid))) return;
  await stopPid(pid);
}
