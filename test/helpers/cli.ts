// The real CLI in a child process: `node bin/weir.js …`, its exit code and both streams.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface CliResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Run as this uid/gid (through setpriv): as root, permissions do not stop a read otherwise. */
  readonly asUser?: number;
}

export function weir(args: readonly string[], env: Record<string, string> = {}, opts: CliOptions = {}): Promise<CliResult> {
  const argv = ['bin/weir.js', ...args];
  const [cmd, cmdArgs] =
    opts.asUser === undefined ? [process.execPath, argv] : ['setpriv', [`--reuid=${opts.asUser}`, `--regid=${opts.asUser}`, '--clear-groups', process.execPath, ...argv]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, cmdArgs, {
      cwd: process.cwd(),
      env: { ...process.env, WEIR_DEBUG: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Any program, its exit code (1 when it was killed or not found) and both streams; never rejects. */
export function execResult(file: string, args: readonly string[], timeoutMs = 180_000): Promise<CliResult & { readonly code: number }> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, WEIR_DEBUG: '' }, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

const WEIR_BIN = fileURLToPath(new URL('../../bin/weir.js', import.meta.url));

/** The real CLI, asserting its exit code (0 unless told) with both streams in the message. */
export async function weirExpect(args: readonly string[], code = 0): Promise<CliResult & { readonly code: number }> {
  const r = await execResult(process.execPath, [WEIR_BIN, ...args]);
  assert.equal(r.code, code, `weir ${args.join(' ')} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  return r;
}
