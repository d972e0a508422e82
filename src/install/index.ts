// `weir install`: weir's manifests (deploy/) rendered for a namespace and an image, and
// checked against the Kubernetes types before anything is printed.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { kustomize, setImage, setNamespace, type Manifest } from './kustomize.js';
import { validateManifest } from './schema.js';

export { kustomize, KustomizeError, CLUSTER_SCOPED, containersOf, type Manifest } from './kustomize.js';
export { validateManifest, modelTypeOf } from './schema.js';

/** The namespace and image name the manifests in deploy/base are written for. */
export const BASE_NAMESPACE = 'weir';
export const BASE_IMAGE = 'weir';

/** deploy/ of this package, found by walking up from this file (works from src/ and dist/src/). */
export function deployDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'deploy', 'base', 'kustomization.yaml'))) return join(dir, 'deploy');
    dir = dirname(dir);
  }
  throw new Error('cannot find the deploy/ folder of the weir package');
}

export interface InstallOptions {
  /** A kustomization folder; default deploy/overlays/<overlay>. */
  readonly from?: string;
  /** An overlay of deploy/overlays (default "default"). */
  readonly overlay?: string;
  readonly namespace?: string;
  /** The weir image, e.g. registry.example/weir:0.1.0. */
  readonly image?: string;
}

export interface Rendered {
  readonly objects: readonly Manifest[];
  /** Schema problems, one line each; empty when every object is valid. */
  readonly problems: readonly string[];
}

export function renderInstall(o: InstallOptions = {}): Rendered {
  const from = o.from ?? join(deployDir(), 'overlays', o.overlay ?? 'default');
  let objects = kustomize(from);
  if (o.namespace !== undefined && o.namespace !== BASE_NAMESPACE) {
    const ns = o.namespace;
    objects = objects.map((m) => setNamespace(m, ns, BASE_NAMESPACE));
    // The agents' settings name the server by its in-cluster DNS name.
    objects = objects.map((m) =>
      m.kind === 'ConfigMap' && m.data && typeof m.data === 'object'
        ? { ...m, data: Object.fromEntries(Object.entries(m.data as Record<string, string>).map(([k, v]) => [k, v.replaceAll(`.${BASE_NAMESPACE}.svc`, `.${ns}.svc`)])) }
        : m,
    );
  }
  if (o.image !== undefined) {
    const image = o.image;
    // Every container of weir's own workloads runs the weir image.
    objects = objects.map((m) => setImage(m, () => true, image));
  }
  return { objects, problems: objects.flatMap(validateManifest) };
}

/** Multi-document YAML, as kubectl kustomize prints it. */
export function toYaml(objects: readonly Manifest[]): string {
  return objects.map((o) => stringify(o, { lineWidth: 0 })).join('---\n');
}
