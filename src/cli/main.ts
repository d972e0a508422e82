// Entry point of the `weir` executable (bin/weir.js runs it through tsx).

import { run } from './run.js';

// `weir analyze … | head` closes the pipe early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  process.stderr.write(`weir: error: cannot write output: ${e.message}\n`);
  process.exit(3);
});

process.exitCode = await run(process.argv);
