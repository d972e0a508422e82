// The lab's desired state: the manifests it enforces, kept in `<dir>/desired/`, one file per
// object (`<Kind>_<namespace>_<name>.yaml`, cluster-scoped kinds `<Kind>_<name>.yaml`), so
// `lab apply` and `lab delete` replace or remove exactly the objects named, like
// `kubectl apply` / `kubectl delete -f`. The agents (through src/source/lab.ts) read that
// folder; `.generation` is bumped last after every change, and agents report the generation
// they enforce, so a command can wait until its change is in every kernel.

import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { isPlainObject, splitDocuments } from '../load/documents.js';
import { buildCluster, findManifestFiles, parseManifests, type ManifestObject } from '../load/index.js';
import { emptyCluster, type Cluster } from '../model/cluster.js';
import type { Diagnostic } from '../model/diagnostics.js';

/** Where the agents read the desired manifests. */
export const DESIRED_DIR = 'desired';
/** A single desired file some labs use instead of the folder (read as well when present). */
export const DESIRED_FILE = 'desired.yaml';
/** Bumped (last) after every change to the desired manifests; hidden, so the loader skips it. */
export const GENERATION_FILE = '.generation';

export const desiredDir = (dir: string): string => join(dir, DESIRED_DIR);

const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy']);

export interface DesiredObject {
  /** `Kind ns/name` or `Kind name`, as diagnostics name objects. */
  readonly id: string;
  /** File name inside the desired folder. */
  readonly file: string;
  readonly text: string;
}

/** The desired folder's content: file name → YAML text. */
export type DesiredFiles = ReadonlyMap<string, string>;

export interface DesiredCluster {
  readonly cluster: Cluster;
  readonly diagnostics: Diagnostic[];
}

function safe(part: string): string {
  return part.replace(/[^A-Za-z0-9.-]/g, '-');
}

/** Every object of the manifest files under `paths`, one YAML text each (Lists expanded). */
export async function readObjects(paths: readonly string[]): Promise<DesiredObject[]> {
  const { files } = await findManifestFiles([...paths]);
  const out = new Map<string, DesiredObject>();
  for (const file of files) {
    const { docs } = splitDocuments(await readFile(file, 'utf8'), file);
    for (const doc of docs) {
      if (!isPlainObject(doc.value)) continue;
      const kind = typeof doc.value.kind === 'string' ? doc.value.kind : '';
      const meta = isPlainObject(doc.value.metadata) ? doc.value.metadata : {};
      const name = typeof meta.name === 'string' ? meta.name : '';
      if (!kind || !name) continue; // the loader has reported it already
      const ns = CLUSTER_SCOPED.has(kind) ? undefined : typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default';
      const value = ns !== undefined ? { ...doc.value, metadata: { ...meta, namespace: ns } } : doc.value;
      const obj: DesiredObject = {
        id: ns !== undefined ? `${kind} ${ns}/${name}` : `${kind} ${name}`,
        file: ns !== undefined ? `${safe(kind)}_${safe(ns)}_${safe(name)}.yaml` : `${safe(kind)}_${safe(name)}.yaml`,
        text: `# ${doc.file}:${doc.line}\n${stringify(value)}`,
      };
      // The last definition wins, as with `kubectl apply` of several files.
      out.set(obj.file, obj);
    }
  }
  return [...out.values()];
}

/** The desired folder as file → text (the generation file and temp files left out). */
export async function readDesired(dir: string): Promise<Map<string, string>> {
  const folder = desiredDir(dir);
  const names = await readdir(folder).catch(() => [] as string[]);
  const out = new Map<string, string>();
  for (const n of names.sort()) if (!n.startsWith('.')) out.set(n, await readFile(join(folder, n), 'utf8'));
  return out;
}

/** Loads a desired set from memory, exactly as it loads from the folder. */
export function buildDesired(dir: string, files: DesiredFiles): DesiredCluster {
  const objects: ManifestObject[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const [name, text] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const parsed = parseManifests(text, join(desiredDir(dir), name));
    objects.push(...parsed.objects);
    diagnostics.push(...parsed.diagnostics);
  }
  const built = buildCluster(objects);
  return { cluster: built.cluster, diagnostics: [...diagnostics, ...built.diagnostics] };
}

/** Is there a desired state at all (a lab started by `weir lab up` has one)? */
export function hasDesired(dir: string): boolean {
  return existsSync(desiredDir(dir)) || existsSync(join(dir, DESIRED_FILE));
}

/**
 * The desired cluster of a lab: the folder, plus `desired.yaml` when present; empty when
 * there is neither (a lab built through the library without `weir lab up`).
 */
export async function loadDesired(dir: string): Promise<DesiredCluster & { readonly present: boolean }> {
  if (!hasDesired(dir)) return { cluster: emptyCluster(), diagnostics: [], present: false };
  const files = await readDesired(dir);
  const single = await readFile(join(dir, DESIRED_FILE), 'utf8').catch(() => undefined);
  const built = single === undefined ? buildDesired(dir, files) : buildSingleFirst(dir, single, files);
  return { ...built, present: true };
}

/** `desired.yaml` first, then the folder, as the loader reads them in sorted order. */
function buildSingleFirst(dir: string, single: string, files: DesiredFiles): DesiredCluster {
  const objects: ManifestObject[] = [];
  const diagnostics: Diagnostic[] = [];
  const parsed = parseManifests(single, join(dir, DESIRED_FILE));
  objects.push(...parsed.objects);
  diagnostics.push(...parsed.diagnostics);
  for (const [name, text] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const p = parseManifests(text, join(desiredDir(dir), name));
    objects.push(...p.objects);
    diagnostics.push(...p.diagnostics);
  }
  const built = buildCluster(objects);
  return { cluster: built.cluster, diagnostics: [...diagnostics, ...built.diagnostics] };
}

/** Brings the folder to `next`: writes new and changed files (tmp + rename), removes the rest. */
export async function writeDesired(dir: string, next: DesiredFiles): Promise<void> {
  const folder = desiredDir(dir);
  await mkdir(folder, { recursive: true });
  const current = await readDesired(dir);
  for (const [name, text] of next) {
    if (current.get(name) === text) continue;
    const tmp = join(folder, `.${name}.${process.pid}.tmp`);
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, join(folder, name));
  }
  for (const name of current.keys()) if (!next.has(name)) await rm(join(folder, name), { force: true });
}

/** Removes the desired state (`lab down --purge`). */
export async function removeDesired(dir: string): Promise<void> {
  await rm(desiredDir(dir), { recursive: true, force: true });
}

/** `<dir>/desired/.generation`; undefined when absent or not a whole number. */
export async function readDesiredGeneration(dir: string): Promise<number | undefined> {
  const text = await readFile(join(desiredDir(dir), GENERATION_FILE), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const n = Number(text.trim());
  return text.trim() !== '' && Number.isInteger(n) && n >= 0 ? n : undefined;
}

/** The current desired generation (0 before the first write). */
export async function readGeneration(dir: string): Promise<number> {
  return (await readDesiredGeneration(dir)) ?? 0;
}

/** Bumps the desired generation; call after every change to the desired folder. */
export async function bumpGeneration(dir: string): Promise<number> {
  const next = (await readGeneration(dir)) + 1;
  await mkdir(desiredDir(dir), { recursive: true });
  const file = join(desiredDir(dir), GENERATION_FILE);
  await writeFile(`${file}.${process.pid}.tmp`, `${next}\n`);
  await rename(`${file}.${process.pid}.tmp`, file);
  return next;
}
