// Every command group of the CLI, in the order `weir --help` lists them. A group is a module
// exporting `register…Commands(program)`; to add one, write the module and add it here —
// nothing else in the CLI core changes.

import type { Command } from 'commander';
import { registerAnalyzerCommands } from './analyzer.js';
import { registerInstallCommands } from './install.js';
import { registerLabCommands } from './lab/index.js';
import { registerLbCommands } from './lb.js';
import { registerServeCommands } from './serve.js';

export type RegisterCommands = (program: Command) => void;

export const COMMAND_GROUPS: readonly RegisterCommands[] = [
  registerAnalyzerCommands, // analyze, explain, lint (src/cli/analyzer.ts)
  registerLabCommands, // lab …, agent (src/cli/lab/: one file per command)
  registerLbCommands, // lb status|drain|undrain (src/cli/lb.ts)
  registerServeCommands, // serve … (src/cli/serve.ts)
  registerInstallCommands, // install --dry-run (src/cli/install.ts)
];
