// `weir serve …` commands (HTTP API, dashboard, flow collection). Owned by the visibility
// engineer: register them here. Left empty on purpose; the CLI core calls this through the
// list in src/cli/commands.ts.

import type { Command } from 'commander';

export function registerServeCommands(_program: Command): void {
  // Serve commands are registered here.
}
