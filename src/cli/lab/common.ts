// What every `weir lab …` command shares: the lab directory, option types, error mapping.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { CommandError, DEFAULT_PREFIX, defaultLabDir, readState, type LabState } from '../../lab/index.js';
import { formatDiagnostic, ValidationError, type Diagnostic } from '../../model/diagnostics.js';
import { CliError, EXIT_INPUT } from '../exit.js';

export interface GlobalOptions {
  readonly quiet?: boolean;
}

export interface DirOptions {
  readonly dir?: string;
  readonly prefix?: string;
}

/** `examples/demo/` of the working directory, else the one shipped with weir. */
export function defaultPaths(): string[] {
  if (existsSync('examples/demo')) return ['examples/demo/'];
  for (const rel of ['../../../examples/demo/', '../../../../examples/demo/']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return [path];
  }
  return ['examples/demo/'];
}

/** The lab directory, absolute: agents and pid checks compare it textually. */
export function labDir(opts: DirOptions): string {
  return resolve(opts.dir ?? defaultLabDir(opts.prefix ?? DEFAULT_PREFIX));
}

/**
 * The lab's own errors are plain `Error`s with a sentence meant for the user (no lab up, a
 * failed `ip` command, an agent that did not start): one line, exit 2. Anything else (a
 * TypeError, …) is a bug and goes to the top-level handler as an internal error.
 */
export async function labCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ValidationError || e instanceof CliError) throw e;
    if (e instanceof CommandError || (e instanceof Error && e.constructor === Error)) throw new CliError(e.message, EXIT_INPUT);
    throw e;
  }
}

export function printDiagnostics(diags: readonly Diagnostic[], quiet: boolean): void {
  for (const d of diags) if (!quiet || d.severity === 'error') process.stderr.write(`${formatDiagnostic(d)}\n`);
}

export async function requireUp(dir: string): Promise<LabState> {
  const state = await labCall(() => readState(dir));
  if (!state || state.status !== 'up') throw new CliError(`no lab is up in ${dir}: run \`weir lab up\` first (or pass --dir)`);
  return state;
}


export function dirFlag(opts: DirOptions): string {
  return opts.dir !== undefined ? ` --dir ${resolve(opts.dir)}` : '';
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function dirOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'lab directory (default: $WEIR_LAB_DIR, else /run/weir/lab, or /run/weir/lab-<id> for another --prefix)')
    .option('--prefix <prefix>', `network namespace prefix of the lab instance (default "${DEFAULT_PREFIX}")`);
}

