// One CLI invocation, with the single top-level error handler: expected failures print one
// clear line, nothing ever prints a stack unless WEIR_DEBUG=1.

import { CommanderError } from 'commander';
import { escapeControl } from '../analyze/escape.js';
import { ValidationError, formatDiagnostic } from '../model/diagnostics.js';
import { CliError, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, exitStatus } from './exit.js';
import { buildProgram } from './program.js';

function debugEnabled(env: NodeJS.ProcessEnv): boolean {
  const v = env.WEIR_DEBUG;
  return v !== undefined && v !== '' && v !== '0';
}

/**
 * Turns anything a command threw into lines on stderr and an exit code. Commander has
 * already printed its own usage errors, help and version.
 */
export function reportError(e: unknown, write: (text: string) => void, env: NodeJS.ProcessEnv = process.env): number {
  const debug = debugEnabled(env);
  if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT_OK : EXIT_INPUT;
  if (debug && e instanceof Error) {
    write(`${e.stack ?? e.message}\n`);
    if (e.cause instanceof Error) write(`caused by: ${e.cause.stack ?? e.cause.message}\n`);
  }
  if (e instanceof CliError) {
    write(`weir: error: ${escapeControl(e.message)}\n`);
    return e.exitCode;
  }
  if (e instanceof ValidationError) {
    for (const d of e.diagnostics) write(`${escapeControl(formatDiagnostic(d))}\n`);
    return EXIT_INPUT;
  }
  const message = e instanceof Error ? e.message : String(e);
  write(`weir: error: internal error: ${message}${debug ? '' : ' (set WEIR_DEBUG=1 for the stack trace)'}\n`);
  return EXIT_INTERNAL;
}

/** Runs `weir` with node-style argv (`[node, script, ...args]`); returns the exit code. */
export async function run(argv: readonly string[]): Promise<number> {
  exitStatus.reset();
  const program = buildProgram();
  if (argv.length <= 2) {
    program.outputHelp();
    return EXIT_INPUT;
  }
  try {
    await program.parseAsync([...argv]);
    return exitStatus.code;
  } catch (e) {
    return reportError(e, (t) => process.stderr.write(t));
  }
}
