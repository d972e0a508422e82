// The real CLI in a child process: `node bin/weir.js …`, its exit code and both streams.

import { spawn } from 'node:child_process';

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
