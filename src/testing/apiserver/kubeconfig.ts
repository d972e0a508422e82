// A kubeconfig that points kubectl (or weir's Kubernetes source) at a test API server.

import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

export interface KubeconfigOptions {
  readonly server: string;
  /** PEM of the CA that signed the server's certificate (https servers). */
  readonly ca?: string;
  readonly token?: string;
  readonly namespace?: string;
  readonly name?: string;
}

export function kubeconfigText(o: KubeconfigOptions): string {
  const name = o.name ?? 'weir-test';
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    // @kubernetes/client-node refuses plain http unless TLS verification is explicitly
    // skipped; the test server speaks http on loopback only.
    clusters: [
      {
        name,
        cluster: {
          server: o.server,
          ...(o.server.startsWith('http:') ? { 'insecure-skip-tls-verify': true } : {}),
          ...(o.ca !== undefined ? { 'certificate-authority-data': Buffer.from(o.ca).toString('base64') } : {}),
        },
      },
    ],
    users: [{ name, user: o.token !== undefined ? { token: o.token } : {} }],
    contexts: [{ name, context: { cluster: name, user: name, ...(o.namespace ? { namespace: o.namespace } : {}) } }],
    'current-context': name,
    preferences: {},
  });
}

/** Writes the kubeconfig (mode 0600, as kubectl does) and returns its path. */
export function writeKubeconfig(path: string, o: KubeconfigOptions): string {
  writeFileSync(path, kubeconfigText(o), { mode: 0o600 });
  return path;
}
