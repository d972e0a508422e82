// Reading and writing the files of Services at run time (schemas: lb-status.ts).

import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { drainFileSchema, LB_DRAIN_FILE, lbNodeStatusSchema, lbStatusFile, LOCATION_NAME, type DrainFile, type LbNodeStatus } from './lb-status.js';

async function writeAtomic(file: string, value: unknown): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value)}\n`);
  await rename(tmp, file);
}

export async function writeLbStatus(dir: string, status: LbNodeStatus): Promise<void> {
  await writeAtomic(join(dir, lbStatusFile(status.node)), status);
}

/** Every agent's Service status in `dir` (files that do not parse are reported, not skipped silently). */
export async function readLbStatuses(dir: string): Promise<{ readonly statuses: LbNodeStatus[]; readonly errors: string[] }> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^lb-.+\.json$/.test(n) && n !== LB_DRAIN_FILE).sort();
  const statuses: LbNodeStatus[] = [];
  const errors: string[] = [];
  for (const name of names) {
    try {
      const parsed = lbNodeStatusSchema.safeParse(JSON.parse(await readFile(join(dir, name), 'utf8')));
      if (parsed.success) statuses.push(parsed.data);
      else errors.push(`${join(dir, name)}: ${parsed.error.issues[0].path.join('.')}: ${parsed.error.issues[0].message}`);
    } catch (e) {
      errors.push(`${join(dir, name)}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { statuses, errors };
}

/**
 * The drained locations. A missing file is no drain; a file that does not parse throws with
 * the file and field named (the agent then keeps the drains it had: a drain moves traffic, and
 * a half-written file must not silently move it back).
 */
export async function readDrains(dir: string): Promise<Set<string>> {
  const file = join(dir, LB_DRAIN_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
    throw e;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new Error(`${file}: not JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const parsed = drainFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return new Set(parsed.data.drained);
}

/** `weir lb drain` / `undrain`: adds or removes one location; returns the drained set after. */
export async function setDrain(dir: string, location: string, drained: boolean): Promise<string[]> {
  if (!LOCATION_NAME.test(location)) throw new Error(`"${location}" is not a location name (a label value: letters, digits, '-', '_', '.', at most 63)`);
  const now = await readDrains(dir);
  if (drained) now.add(location);
  else now.delete(location);
  const list = [...now].sort();
  await writeAtomic(join(dir, LB_DRAIN_FILE), { drained: list } satisfies DrainFile);
  return list;
}


/**
 * `weir lab down`: the agents' status files (they would show a lab that is gone as balancing);
 * with `drains`, the drain file too (`--purge`). Returns the files removed.
 */
export async function removeLbFiles(dir: string, drains: boolean): Promise<string[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => /^lb-.+\.json$/.test(n) && (drains || n !== LB_DRAIN_FILE));
  for (const n of names) await rm(join(dir, n), { force: true });
  return names;
}
