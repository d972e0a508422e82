// The `weir` command line: global options, help and version here; the commands themselves
// come from the groups listed in commands.ts.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { COMMAND_GROUPS } from './commands.js';

/** The package version, found by walking up from this file (works from src/ and dist/src/). */
export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'weir' && pkg.version) return pkg.version;
    }
    dir = dirname(dir);
  }
  return '0.0.0';
}

export function buildProgram(): Command {
  const program = new Command('weir');
  program
    .description('weir: policy-based networking for Kubernetes-style workloads')
    .version(packageVersion(), '-V, --version', 'print the version')
    .option('-q, --quiet', 'print only errors among the input diagnostics')
    .showHelpAfterError('(add --help for usage)')
    // Errors come back to `run` as exceptions, so exit codes are decided in one place.
    .exitOverride()
    .addHelpText(
      'after',
      `
Examples:
  $ weir analyze examples/demo                        list allowed connections
  $ weir analyze examples/demo --format dot -o g.dot  the same as a graph
  $ weir explain examples/demo --from shop/frontend --to shop/cart --port 8080/TCP
  $ weir lint examples/demo

Exit status: 0 ok, 1 problems found (lint errors, explain --fail-on-deny),
2 invalid input or arguments, 3 internal error (WEIR_DEBUG=1 prints the stack).`,
    );
  for (const register of COMMAND_GROUPS) register(program);
  return program;
}
