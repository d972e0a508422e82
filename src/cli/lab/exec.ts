// `weir lab exec TARGET -- COMMAND`: a command inside a pod's, node's or the external host's
// network namespace, with the terminal attached.

import { spawn } from 'node:child_process';
import { targetNetns } from '../../lab/index.js';
import { CliError, exitStatus } from '../exit.js';
import { labCall, labDir, requireUp, type DirOptions } from './common.js';

export async function runExec(target: string, argv: string[], opts: DirOptions): Promise<void> {
  if (argv.length === 0) throw new CliError('nothing to run: weir lab exec NS/POD -- COMMAND [ARGS…]');
  const state = await requireUp(labDir(opts));
  const netns = await labCall(async () => targetNetns(state, target));
  // Inherited stdio: interactive and streaming commands (ping, nc) behave as in a shell.
  const code = await new Promise<number>((done, fail) => {
    const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: 'inherit' });
    child.on('error', (e) => fail(new CliError(`cannot run ${argv[0] ?? ''}: ${e.message}`)));
    child.on('exit', (c, signal) => done(c ?? (signal ? 128 + 15 : 1)));
  });
  exitStatus.raise(code);
}

