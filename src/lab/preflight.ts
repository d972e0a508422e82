// Checks that the lab can run at all, before anything is planned or created. Each failure
// is one sentence saying what to install or how to run — never a stack trace.

import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { type Diagnostic, ValidationError } from '../model/diagnostics.js';

const TOOLS: readonly { bin: string; pkg: string }[] = [
  { bin: 'ip', pkg: 'iproute2' },
  { bin: 'bridge', pkg: 'iproute2' },
  { bin: 'sysctl', pkg: 'procps' },
  { bin: 'nft', pkg: 'nftables' },
];

async function onPath(bin: string): Promise<boolean> {
  const dirs = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter);
  for (const dir of [...dirs, '/usr/sbin', '/sbin']) {
    try {
      await access(join(dir, bin), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

export async function preflightDiagnostics(): Promise<Diagnostic[]> {
  const out: Diagnostic[] = [];
  if (process.platform !== 'linux') {
    out.push({ severity: 'error', code: 'lab-not-linux', message: 'weir lab needs Linux network namespaces; use `weir analyze` on other systems' });
    return out;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    out.push({
      severity: 'error',
      code: 'lab-not-root',
      message: 'weir lab creates network namespaces and needs root: run it with sudo (or as root)',
    });
  }
  const missing = [];
  for (const tool of TOOLS) if (!(await onPath(tool.bin))) missing.push(tool);
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => t.pkg))].join(' ');
    out.push({
      severity: 'error',
      code: 'lab-missing-tool',
      message: `weir lab needs ${missing.map((t) => `\`${t.bin}\``).join(', ')}: install them with \`apt-get install -y ${pkgs}\` (or your distribution's equivalent)`,
    });
  }
  return out;
}

/** Throws a ValidationError (one line per problem) when the lab cannot run here. */
export async function preflight(): Promise<void> {
  const diags = await preflightDiagnostics();
  if (diags.length > 0) throw new ValidationError(diags);
}
