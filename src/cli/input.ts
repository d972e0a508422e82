// Reading manifests for any command: load, print the loader's diagnostics, keep going with
// the valid objects. Shared by every command module (analyzer, lab, serve).

import { escapeControl } from '../analyze/escape.js';
import { loadManifests } from '../load/index.js';
import type { Cluster } from '../model/cluster.js';
import { formatDiagnostic, hasErrors, type Diagnostic } from '../model/diagnostics.js';

export interface Input {
  readonly cluster: Cluster;
  readonly diagnostics: readonly Diagnostic[];
  /** True when some object or file was rejected: results cover the valid objects only. */
  readonly hasErrors: boolean;
}

export interface InputOptions {
  /** Print only errors (not warnings and notices). */
  readonly quiet?: boolean;
  /** Do not print the diagnostics at all (the caller reports them itself, as lint does). */
  readonly silent?: boolean;
  /** Where diagnostics go; stderr by default. */
  readonly write?: (text: string) => void;
}

export async function loadInput(paths: readonly string[], opts: InputOptions = {}): Promise<Input> {
  const { cluster, diagnostics } = await loadManifests([...paths]);
  const write = opts.write ?? ((t: string) => process.stderr.write(t));
  if (!opts.silent) {
    for (const d of diagnostics) {
      if (opts.quiet && d.severity !== 'error') continue;
      // A manifest must not rewrite the terminal: control characters in names are escaped.
      write(`${escapeControl(formatDiagnostic(d))}\n`);
    }
  }
  return { cluster, diagnostics, hasErrors: hasErrors(diagnostics) };
}

export function countErrors(diags: readonly Diagnostic[]): number {
  return diags.filter((d) => d.severity === 'error').length;
}
