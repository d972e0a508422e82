// The test API server: the Kubernetes list/watch protocol over HTTP for tests and the lab.
export { APISERVER_LISTENING, TestApiServer, type TestApiServerOptions, type RequestRecord } from './server.js';
export { ObjectStore, ApiError, type KubeObject, type ObjectMeta, type StoreState, type StoreEvent } from './store.js';
export { API_RESOURCES, apiVersionOf, collectionPath, resourceByKind, type ApiResource } from './resources.js';
export { kubeconfigText, writeKubeconfig, type KubeconfigOptions } from './kubeconfig.js';
