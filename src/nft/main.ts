// Standalone entry for the agent process, for tests and until the CLI wires `weir agent`:
//   node --import tsx src/nft/main.ts --lab-dir DIR --node NAME [--strict] [--once] [--manifests PATH]...
// Exit code 0 on SIGTERM/SIGINT; with --once, 0 when the apply succeeded, 1 otherwise.

import { parseArgs } from 'node:util';
import { runAgent } from '../agent/agent.js';

const { values } = parseArgs({
  options: {
    'lab-dir': { type: 'string' },
    node: { type: 'string' },
    strict: { type: 'boolean', default: false },
    once: { type: 'boolean', default: false },
    manifests: { type: 'string', multiple: true },
    'poll-ms': { type: 'string' },
  },
});
const labDir = values['lab-dir'];
const node = values.node;
if (!labDir || !node) {
  process.stderr.write('usage: agent --lab-dir DIR --node NAME [--strict] [--once] [--manifests PATH]...\n');
  process.exit(2);
}
const controller = new AbortController();
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => controller.abort());
const status = await runAgent({
  labDir,
  node,
  strict: values.strict,
  once: values.once,
  manifests: values.manifests,
  pollMs: values['poll-ms'] ? Number(values['poll-ms']) : undefined,
  signal: controller.signal,
});
process.exitCode = values.once && !status?.lastApplyOk ? 1 : 0;
