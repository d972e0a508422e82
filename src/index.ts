// weir as a library: `import { loadManifests, PolicyEngine, analyze, explain } from 'weir'`.
export * from './model/cluster.js';
export * from './model/diagnostics.js';
export * from './policy/index.js';
export { loadManifests, loadManifestText, parseManifests, buildCluster, type LoadResult } from './load/index.js';
export * from './analyze/index.js';
// Where cluster state comes from: files here; the lab's LabSource is in src/source/lab.ts.
export { FilesSource, diffSnapshots, snapshotEvents, applyEventsToEngine, snapshotOfCluster, endpointSlicesOf, SOURCE_KINDS } from './source/index.js';
export type { ClusterSource, ClusterSourceHandlers, ClusterEvent, ClusterSnapshot, EndpointSlice, EngineChanges } from './source/index.js';
