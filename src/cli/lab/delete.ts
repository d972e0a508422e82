// `weir lab delete PATH…`: remove the objects the files name from the running lab, like
// `kubectl delete -f`.

import type { Command } from 'commander';
import { readDesired, readObjects } from '../../lab/desired.js';
import { findManifestFiles } from '../../load/index.js';
import { hasErrors } from '../../model/diagnostics.js';
import { CliError, EXIT_FINDINGS, exitStatus } from '../exit.js';
import { writeOutput } from '../output.js';
import { changeDesired, enforcedText, timeoutOf, type ChangeOptions } from './change.js';
import { labDir, printDiagnostics, requireUp, type GlobalOptions } from './common.js';

export async function runDelete(paths: string[], opts: ChangeOptions, cmd: Command): Promise<void> {
  const quiet = cmd.optsWithGlobals<GlobalOptions>().quiet === true;
  const dir = labDir(opts);
  await requireUp(dir);
  const { diagnostics } = await findManifestFiles(paths);
  if (hasErrors(diagnostics)) {
    printDiagnostics(diagnostics, quiet);
    throw new CliError('nothing was deleted');
  }
  const objects = await readObjects(paths);
  if (objects.length === 0) throw new CliError(`no objects in ${paths.join(' ')}`);
  const next = await readDesired(dir);
  const verbs: string[] = [];
  let missing = 0;
  for (const o of objects) {
    if (next.delete(o.file)) verbs.push(`${o.id} deleted`);
    else {
      verbs.push(`${o.id} not found`);
      missing++;
    }
  }
  if (missing === objects.length) {
    await writeOutput(`${verbs.join('\n')}\n`);
    exitStatus.raise(EXIT_FINDINGS);
    return;
  }
  const { pods, agents } = await changeDesired(dir, next, quiet, timeoutOf(opts));
  await writeOutput(`${verbs.join('\n')}\n${pods}; ${enforcedText(agents)}\n`);
  if (missing > 0) exitStatus.raise(EXIT_FINDINGS);
}

