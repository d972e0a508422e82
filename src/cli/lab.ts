// `weir lab …` commands. Owned by the lab engineer: register the lab's subcommands here
// (e.g. `program.command('lab')` with `up`, `down`, `probe`). Left empty on purpose; the CLI
// core (src/cli/program.ts) calls this through the list in src/cli/commands.ts.

import type { Command } from 'commander';

export function registerLabCommands(_program: Command): void {
  // Lab commands are registered here.
}
