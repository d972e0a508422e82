// `weir lab apply PATH…`: add or replace objects in the running lab, like `kubectl apply`.

import type { Command } from 'commander';
import { readDesired, readObjects } from '../../lab/desired.js';
import { CliError } from '../exit.js';
import { countErrors, loadInput } from '../input.js';
import { writeOutput } from '../output.js';
import { changeDesired, enforcedText, timeoutOf, type ChangeOptions } from './change.js';
import { labDir, printDiagnostics, requireUp, type GlobalOptions } from './common.js';

export async function runApply(paths: string[], opts: ChangeOptions, cmd: Command): Promise<void> {
  const quiet = cmd.optsWithGlobals<GlobalOptions>().quiet === true;
  const dir = labDir(opts);
  await requireUp(dir);
  // A file applied alone refers to namespaces the lab already has: the loader's notice that
  // they are not declared (in this file) would only confuse; the merged set is checked below.
  const input = await loadInput(paths, { silent: true });
  printDiagnostics(
    input.diagnostics.filter((d) => d.code !== 'implicit-namespace'),
    quiet,
  );
  if (input.hasErrors) {
    const n = countErrors(input.diagnostics);
    throw new CliError(`${n} error${n === 1 ? '' : 's'} in the manifests: nothing was changed`);
  }
  const objects = await readObjects(paths);
  if (objects.length === 0) throw new CliError(`no objects in ${paths.join(' ')}`);
  const current = await readDesired(dir);
  const next = new Map(current);
  const verbs: string[] = [];
  for (const o of objects) {
    const old = current.get(o.file);
    // The `# source` line differs per file; compare the objects themselves.
    const body = (t: string | undefined): string | undefined => t?.replace(/^# .*\n/, '');
    verbs.push(`${o.id} ${old === undefined ? 'created' : body(old) === body(o.text) ? 'unchanged' : 'configured'}`);
    next.set(o.file, o.text);
  }
  const { pods, agents } = await changeDesired(dir, next, quiet, timeoutOf(opts));
  await writeOutput(`${verbs.join('\n')}\n${pods}; ${enforcedText(agents)}\n`);
}

