// One CLI invocation, with the single top-level error handler: expected failures print one
// clear line, nothing ever prints a stack unless WEIR_DEBUG=1.

import { CommanderError } from 'commander';
import { ValidationError, formatDiagnostic } from '../model/diagnostics.js';
import { CliError, EXIT_INPUT, EXIT_INTERNAL, EXIT_OK, exitStatus } from './exit.js';
import { buildProgram } from './program.js';

function debug(): boolean {
  const v = process.env.WEIR_DEBUG;
  return v !== undefined && v !== '' && v !== '0';
}

function errorLine(text: string): void {
  process.stderr.write(`weir: error: ${text}\n`);
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
    if (debug() && e instanceof Error && !(e instanceof CommanderError)) process.stderr.write(`${e.stack ?? e.message}\n`);
    if (e instanceof CommanderError) {
      // Commander has printed its message (or the help, or the version) already.
      return e.exitCode === 0 ? EXIT_OK : EXIT_INPUT;
    }
    if (e instanceof CliError) {
      errorLine(e.message);
      return e.exitCode;
    }
    if (e instanceof ValidationError) {
      for (const d of e.diagnostics) process.stderr.write(`${formatDiagnostic(d)}\n`);
      return EXIT_INPUT;
    }
    const message = e instanceof Error ? e.message : String(e);
    errorLine(`internal error: ${message}${debug() ? '' : ' (set WEIR_DEBUG=1 for the stack trace)'}`);
    return EXIT_INTERNAL;
  }
}
