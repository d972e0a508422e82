// Shared helpers for tests that create network namespaces: a unique prefix per test, a
// root check to skip on unprivileged runs, leftover detection and forced cleanup. Cleanup
// only ever touches namespaces carrying the test's own prefix and processes inside them.

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

function exec(argv: readonly string[], input?: string): Promise<{ stdout: string; code: number }> {
  const [file, ...args] = argv;
  return new Promise((resolve) => {
    const child = execFile(file ?? 'false', args, { encoding: 'utf8', timeout: 30_000 }, (error, stdout) => {
      resolve({ stdout, code: error ? 1 : 0 });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

/** Why namespace tests cannot run here, or undefined when they can (root + iproute2). */
export async function netnsSkipReason(): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'needs root (network namespaces)';
  const { code } = await exec(['ip', 'netns', 'list']);
  return code === 0 ? undefined : 'needs iproute2 (`ip`)';
}

/** A fresh instance prefix, e.g. `weir-t3f9a-`: never collides with a user's `weir-` lab objects. */
export function testPrefix(): string {
  return `weir-t${randomBytes(2).toString('hex')}-`;
}

export async function tempLabDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'weir-lab-test-'));
}

export async function netnsWithPrefix(prefix: string): Promise<string[]> {
  const { stdout } = await exec(['ip', 'netns', 'list']);
  return stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}

/** Link names in the root namespace (the lab must never add any). */
export async function rootLinks(): Promise<string[]> {
  const { stdout } = await exec(['ip', '-o', 'link', 'show']);
  return stdout
    .split('\n')
    .map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined)
    .sort();
}

export async function pidAlive(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

async function pidsIn(netns: string): Promise<number[]> {
  const { stdout } = await exec(['ip', 'netns', 'pids', netns]);
  return stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/**
 * Last-resort cleanup for a test prefix: kills processes inside the prefix's namespaces
 * (SIGKILL, bounded wait) and deletes the namespaces. Safe to call when nothing is left.
 */
export async function cleanupPrefix(prefix: string, extraPids: readonly number[] = []): Promise<void> {
  if (!prefix.startsWith('weir-t')) throw new Error(`refusing to clean non-test prefix ${prefix}`);
  const names = await netnsWithPrefix(prefix);
  const pids = [...extraPids];
  for (const ns of names) pids.push(...(await pidsIn(ns)));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  for (let i = 0; i < 100 && (await Promise.all(pids.map(pidAlive))).some(Boolean); i++) await sleep(20);
  if (names.length > 0) await exec(['ip', '-force', '-batch', '-'], `${names.map((n) => `netns del ${n}`).join('\n')}\n`);
}

export async function removeDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
}
