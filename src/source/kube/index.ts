// The Kubernetes API as a ClusterSource (list-then-watch per kind; see reflector.ts).
export { KubeSource, type KubeSourceOptions } from './source.js';
export { DEFAULT_TIMING, KubeObjectProblem, type ReflectorStats, type ReflectorTiming } from './reflector.js';
export { KUBE_KINDS, type KubeKind } from './kinds.js';
export { loadKubeConfig, KubeApiError, KubeTransport, type KubeAuth } from './transport.js';
export { normalizeKubeObject, podWorkload, type NormalizeOptions } from './normalize.js';
