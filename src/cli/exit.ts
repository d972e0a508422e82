// Exit codes of the weir CLI, one table for every command:
//
//   0  success (explain: whatever the verdict, unless --fail-on-deny)
//   1  the command worked and found a problem: lint errors, explain --fail-on-deny on a deny
//   2  bad input: invalid manifests (error diagnostics), bad arguments, unknown endpoint
//   3  internal error (a bug in weir; WEIR_DEBUG=1 prints the stack)

export const EXIT_OK = 0;
export const EXIT_FINDINGS = 1;
export const EXIT_INPUT = 2;
export const EXIT_INTERNAL = 3;

/** An expected failure: printed as one line, never with a stack. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number = EXIT_INPUT, cause?: unknown) {
    super(message, cause !== undefined ? { cause } : undefined);
    this.name = 'CliError';
    this.exitCode = exitCode;
  }
}

/**
 * The status a command finished with when it did not fail outright (analyze over partly
 * invalid input, lint with errors). The highest code wins; `run` returns it.
 */
export class ExitStatus {
  code = EXIT_OK;
  reset(): void {
    this.code = EXIT_OK;
  }
  raise(code: number): void {
    if (code > this.code) this.code = code;
  }
}

/** The status of the command being run; `run` resets it before and reads it after. */
export const exitStatus = new ExitStatus();
