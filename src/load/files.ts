// The filesystem shell around the pure parser: finds manifest files, reads them in a
// deterministic order.
//
// A folder is read as users expect: symbolic links are followed (a ConfigMap mount is a
// `..data` link plus one link per key) with loop protection, a file reached twice (named
// twice, or through a link) is read once, and anything that is not a regular file (a FIFO, a
// device, a socket) is refused rather than opened: opening a FIFO waits for a writer.

import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { join } from 'node:path';
import type { Diagnostic } from '../model/diagnostics.js';
import { looksLikeJson } from './documents.js';

export const MANIFEST_EXTENSIONS = ['.yaml', '.yml', '.json'];

/**
 * The largest file weir reads. JSON is read as bytes and parsed item by item (a dump of 100k
 * pods as the API server returns them is about 320 MB); YAML goes through a parser that keeps
 * a node tree of about 70 times the text's size (8 MB of a pod dump: 600 MB peak), so big
 * YAML is refused with a pointer to `-o json`.
 */
export const MAX_FILE_BYTES = 1024 * 1024 * 1024;
export const MAX_YAML_BYTES = 8 * 1024 * 1024;

function isManifest(name: string): boolean {
  return MANIFEST_EXTENSIONS.some((ext) => name.toLowerCase().endsWith(ext));
}

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

function kindOf(st: Stats): string | undefined {
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return undefined;
}

function notRegular(file: string, what: string): Diagnostic {
  return {
    severity: 'error',
    code: 'not-a-regular-file',
    message: `${file} is ${what}, not a regular file; refused (weir does not wait on pipes or devices: save the output to a file first)`,
    file,
  };
}

interface Walk {
  readonly out: string[];
  readonly diagnostics: Diagnostic[];
  /** Real paths of the folders on the current path from the root: a link back to one is a loop. */
  readonly ancestors: Set<string>;
}

async function walk(dir: string, w: Walk): Promise<void> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (e) {
    w.diagnostics.push({ severity: 'error', code: 'read-error', message: `cannot read folder: ${(e as Error).message}`, file: dir });
    return;
  }
  for (const e of entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    // Hidden entries (.git, editor backups, a ConfigMap's ..data) are never read directly;
    // the visible links that point into them are.
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    let st: Stats;
    if (e.isSymbolicLink()) {
      try {
        st = await stat(p);
      } catch (err) {
        w.diagnostics.push({ severity: 'warning', code: 'broken-link', message: `symbolic link points nowhere (${(err as Error).message}); skipped`, file: p });
        continue;
      }
    } else if (e.isDirectory() || e.isFile()) {
      if (e.isFile()) {
        if (isManifest(e.name)) w.out.push(p);
        continue;
      }
      st = await stat(p);
    } else {
      if (isManifest(e.name)) w.diagnostics.push(notRegular(p, e.isFIFO() ? 'a FIFO' : e.isSocket() ? 'a socket' : 'a device'));
      continue;
    }
    if (st.isDirectory()) {
      const real = await realpath(p).catch(() => p);
      if (w.ancestors.has(real)) {
        w.diagnostics.push({ severity: 'notice', code: 'link-loop', message: `symbolic link leads back to ${real}; not followed again`, file: p });
        continue;
      }
      w.ancestors.add(real);
      await walk(p, w);
      w.ancestors.delete(real);
    } else if (isManifest(e.name)) {
      const what = kindOf(st);
      if (what) w.diagnostics.push(notRegular(p, what));
      else w.out.push(p);
    }
  }
}

/**
 * Expands files and folders into manifest files: folders recursively, sorted by path so the
 * same tree always loads in the same order; a file named explicitly is read whatever its name.
 * A file reached more than once (by two names, or through links) is listed once, first seen.
 */
export async function findManifestFiles(paths: readonly string[]): Promise<{ files: string[]; diagnostics: Diagnostic[] }> {
  const files: string[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const p of paths) {
    let st;
    try {
      st = await stat(p);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      diagnostics.push(
        code === 'ENOENT'
          ? { severity: 'error', code: 'file-not-found', message: `no such file or directory: ${p}`, file: p }
          : { severity: 'error', code: 'read-error', message: `cannot read: ${(e as Error).message}`, file: p },
      );
      continue;
    }
    if (st.isDirectory()) {
      const found: string[] = [];
      const walkDiags: Diagnostic[] = [];
      await walk(p, { out: found, diagnostics: walkDiags, ancestors: new Set([await realpath(p).catch(() => p)]) });
      found.sort();
      diagnostics.push(...walkDiags);
      if (found.length === 0 && walkDiags.length === 0) {
        diagnostics.push({ severity: 'warning', code: 'no-manifests', message: `no .yaml, .yml or .json files under ${p}`, file: p });
      }
      files.push(...found);
    } else {
      const what = kindOf(st);
      if (what) diagnostics.push(notRegular(p, what));
      else files.push(p);
    }
  }
  const seen = new Set<string>();
  const unique: string[] = [];
  for (const f of files) {
    const real = await realpath(f).catch(() => f);
    if (seen.has(real)) continue;
    seen.add(real);
    unique.push(f);
  }
  return { files: unique, diagnostics };
}

/**
 * Reads one manifest file as bytes (JSON is parsed from the bytes, item by item); refuses
 * what is not a regular file or is too big to read safely.
 */
export async function readManifestFile(file: string): Promise<{ text?: Buffer; diagnostic?: Diagnostic }> {
  try {
    // stat before opening: opening a FIFO would wait for a writer.
    const st = await stat(file);
    const what = kindOf(st);
    if (what) return { diagnostic: notRegular(file, what) };
    if (st.size > MAX_FILE_BYTES) {
      return {
        diagnostic: { severity: 'error', code: 'file-too-large', message: `${file} is ${mib(st.size)}; weir reads files up to ${mib(MAX_FILE_BYTES)} (split the snapshot by namespace or kind)`, file },
      };
    }
    const text = await readFile(file);
    if (st.size > MAX_YAML_BYTES && !looksLikeJson(text)) {
      return {
        diagnostic: {
          severity: 'error',
          code: 'file-too-large',
          message: `${file} is ${mib(st.size)} of YAML; weir reads YAML files up to ${mib(MAX_YAML_BYTES)} (the YAML parser needs about 70 times the size in memory): dump the snapshot as JSON (kubectl get ... -o json), read up to ${mib(MAX_FILE_BYTES)}`,
          file,
        },
      };
    }
    return { text };
  } catch (e) {
    return { diagnostic: { severity: 'error', code: 'read-error', message: `cannot read file: ${(e as Error).message}`, file } };
  }
}
