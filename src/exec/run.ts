// Small adapters around execFile. No shell anywhere: argv arrays only, so pod names and
// labels can never be interpreted as shell syntax.

import { execFile } from 'node:child_process';

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

export class CommandError extends Error {
  readonly argv: readonly string[];
  readonly result: ExecResult;
  constructor(argv: readonly string[], result: ExecResult) {
    const detail = result.stderr.trim().split('\n').slice(-3).join('; ');
    super(`\`${argv.join(' ')}\` failed (exit ${result.code})${detail ? `: ${detail}` : ''}`);
    this.name = 'CommandError';
    this.argv = argv;
    this.result = result;
  }
}

export interface RunOptions {
  /** Written to the child's stdin (then closed). */
  readonly input?: string;
  /** Kill the child after this many ms (default 30 s). */
  readonly timeoutMs?: number;
  /** Resolve with the result instead of throwing on a non-zero exit. */
  readonly allowFailure?: boolean;
}

/** Runs argv[0] with argv[1..]; throws CommandError on failure unless allowFailure. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<ExecResult> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('run: empty argv'));
  return new Promise((resolve, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (error, stdout, stderr) => {
        let code = 0;
        if (error) {
          const e = error as NodeJS.ErrnoException & { code?: number | string };
          if (typeof e.code === 'string') {
            // Spawn failure (ENOENT, EACCES): the program itself is missing.
            reject(new Error(`cannot run ${file}: ${e.code}`));
            return;
          }
          code = typeof e.code === 'number' ? e.code : 1;
        }
        const result = { stdout, stderr, code };
        if (code !== 0 && !opts.allowFailure) reject(new CommandError(argv, result));
        else resolve(result);
      },
    );
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(opts.input ?? '');
  });
}

/** Runs argv inside network namespace `netns` (`ip netns exec`). */
export function runInNetns(netns: string, argv: readonly string[], input?: string, opts: Omit<RunOptions, 'input'> = {}): Promise<ExecResult> {
  return run(['ip', 'netns', 'exec', netns, ...argv], { ...opts, input });
}

/** Feeds `ip -batch -` (optionally `-n netns`), one command per line; no-op when empty. */
export async function ipBatch(lines: readonly string[], netns?: string, tool: 'ip' | 'bridge' = 'ip'): Promise<void> {
  if (lines.length === 0) return;
  const argv = netns ? [tool, '-n', netns, '-batch', '-'] : [tool, '-batch', '-'];
  await run(argv, { input: `${lines.join('\n')}\n` });
}
