// The manifest loader: YAML/JSON manifests → validated, normalized Cluster + diagnostics.
//
//   loadManifests(paths)           files and folders → LoadResult (the usual entry point)
//   parseManifests(text, file)     one text → validated objects (for incremental loading)
//   buildCluster(objects)          objects from any number of parses → LoadResult
//   loadManifestText(text, file)   parse + build for a single string

import type { Diagnostic } from '../model/diagnostics.js';
import { buildCluster, type LoadResult } from './build.js';
import { findManifestFiles, readManifestFile } from './files.js';
import { parseManifests, type ManifestObject, type ParseOptions } from './parse.js';

export { buildCluster, type LoadResult } from './build.js';
export { parseManifests, parseManifestObject, type ManifestObject, type LoadedWorkload, type OwnerRef, type ParseOptions, type ParseResult } from './parse.js';
export { findManifestFiles, MANIFEST_EXTENSIONS } from './files.js';
export { formatPath } from './issues.js';
export { MODE_ANNOTATION } from './schema.js';
export { NAMESPACE_NAME_LABEL } from './normalize.js';
export { parseCIDR, parseIP, canonicalCIDR, isStrictSubset, hasHostBits, type ParsedCIDR, type ParsedIP } from '../net/address.js';

export type LoadOptions = ParseOptions;

/** Loads manifest files and folders (recursively; .yaml, .yml, .json) in sorted order. */
export async function loadManifests(paths: string[], opts: LoadOptions = {}): Promise<LoadResult> {
  const { files, diagnostics } = await findManifestFiles(paths);
  const objects: ManifestObject[] = [];
  const all: Diagnostic[] = [...diagnostics];
  for (const file of files) {
    const { text, diagnostic } = await readManifestFile(file);
    if (diagnostic) all.push(diagnostic);
    if (text === undefined) continue;
    const parsed = parseManifests(text, file, opts);
    // One push per object: a spread of a 100k-pod file's objects would pass 100k arguments.
    for (const o of parsed.objects) objects.push(o);
    for (const d of parsed.diagnostics) all.push(d);
  }
  const built = buildCluster(objects);
  return { cluster: built.cluster, diagnostics: [...all, ...built.diagnostics] };
}

/** Parses and builds a single manifest text (tests, `weir lab apply -f -`). */
export function loadManifestText(text: string, file = '<input>', opts: LoadOptions = {}): LoadResult {
  const parsed = parseManifests(text, file, opts);
  const built = buildCluster(parsed.objects);
  return { cluster: built.cluster, diagnostics: [...parsed.diagnostics, ...built.diagnostics] };
}
