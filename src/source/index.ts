// Where the cluster's state comes from: one interface (types.ts), its implementations (files,
// the lab), and the two functions every consumer needs — snapshots → events (diff.ts) and
// events → engine (engine.ts).

export type { ClusterEvent, ClusterSnapshot, ClusterSource, ClusterSourceHandlers, EndpointSlice, KindObjects, SourceKind } from './types.js';
export { SOURCE_KINDS } from './types.js';
export { diffSnapshots, snapshotEvents, applyEventsToSnapshot, objectKey, objectsOf, sameValue, EMPTY_SNAPSHOT } from './diff.js';
export { applyEventsToEngine, type EngineChanges } from './engine.js';
export { endpointSlicesOf, endpointSlicesOfService } from './endpoints.js';
export { FilesSource, snapshotOfCluster, type FilesSourceOptions } from './files.js';
export { LabSource, labSnapshot, type LabSourceOptions, type LabRead } from './lab.js';
export { FileWatch, inputsSignature, type FileWatchOptions } from './watch.js';
