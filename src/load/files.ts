// The filesystem shell around the pure parser: finds manifest files, reads them in a
// deterministic order.

import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Diagnostic } from '../model/diagnostics.js';

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

function isManifest(name: string): boolean {
  return MANIFEST_EXTENSIONS.some((ext) => name.toLowerCase().endsWith(ext));
}

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    // Hidden entries (.git, editor backups) are never manifests.
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (e.isFile() && isManifest(e.name)) out.push(p);
  }
}

/**
 * Expands files and folders into manifest files: folders recursively, sorted by path so the
 * same tree always loads in the same order; a file named explicitly is read whatever its name.
 */
export async function findManifestFiles(paths: readonly string[]): Promise<{ files: string[]; diagnostics: Diagnostic[] }> {
  const files: string[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch {
      diagnostics.push({ severity: 'error', code: 'file-not-found', message: `no such file or directory: ${p}`, file: p });
      continue;
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      await walk(p, found);
      found.sort();
      if (found.length === 0) {
        diagnostics.push({ severity: 'warning', code: 'no-manifests', message: `no .yaml, .yml or .json files under ${p}`, file: p });
      }
      files.push(...found);
    } else {
      files.push(p);
    }
  }
  return { files: [...new Set(files)], diagnostics };
}

export async function readManifestFile(file: string): Promise<{ text?: string; diagnostic?: Diagnostic }> {
  try {
    return { text: await readFile(file, 'utf8') };
  } catch (e) {
    return { diagnostic: { severity: 'error', code: 'read-error', message: `cannot read file: ${(e as Error).message}`, file } };
  }
}
