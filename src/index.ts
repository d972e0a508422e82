// weir as a library: `import { loadManifests, PolicyEngine, analyze, explain } from 'weir'`.
export * from './model/cluster.js';
export * from './model/diagnostics.js';
export * from './policy/index.js';
export { loadManifests, loadManifestText, parseManifests, buildCluster, type LoadResult } from './load/index.js';
export * from './analyze/index.js';
