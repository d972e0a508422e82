// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// Fidelity of the test API server, checked with a client nobody here wrote: kubectl 1.32
// discovers, lists (with pages), prints tables, applies, patches, deletes and watches through
// it, and sees exactly the objects and events the server holds.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { writeKubeconfig } from '../src/testing/apiserver/index.js';
import { adminNetworkPolicy, namespace, networkPolicy, pod, startApiServer, waitFor, type ApiFixture } from './helpers/kube.js';

const run = promisify(execFile);
const KUBECTL = '/usr/bin/kubectl';

interface KubeItem {
  kind: string;
  apiVersion: string;
  metadata: { name: string; namespace?: string; resourceVersion: string; uid: string; labels?: Record<string, string> };
}

/** Splits kubectl's stream of pretty-printed JSON objects into objects. */
function splitJsonStream(text: string): unknown[] {
  const out: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inString = false;
  let escaped = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') {
      if (depth === 0) start = i;
      depth++;
    } else if (c === '}') {
      depth--;
      if (depth === 0) out.push(JSON.parse(text.slice(start, i + 1)));
    }
  }
  return out;
}

describe('test API server through kubectl', { skip: !existsSync(KUBECTL) && 'kubectl not installed' }, () => {
  let api: ApiFixture;
  const kubectl = (...args: string[]) => run(KUBECTL, ['--kubeconfig', api.kubeconfig, ...args], { timeout: 30_000 });

  before(async () => {
    api = await startApiServer();
    for (const ns of ['x', 'y']) api.server.create(namespace(ns, { ns }));
    for (const ns of ['x', 'y']) for (const p of ['a', 'b', 'c']) api.server.create(pod(ns, p, { labels: { pod: p }, ip: `10.0.${ns === 'x' ? 1 : 2}.${p.charCodeAt(0)}` }));
    api.server.create(networkPolicy('x', 'allow-a', { pod: 'a' }));
    api.server.create(adminNetworkPolicy('deny-app', 10));
  });
  after(async () => api?.close());

  it('discovers every served resource (kubectl api-resources)', async () => {
    const { stdout } = await kubectl('api-resources', '--no-headers');
    for (const name of ['namespaces', 'nodes', 'pods', 'services', 'endpointslices', 'networkpolicies', 'adminnetworkpolicies', 'baselineadminnetworkpolicies']) {
      assert.match(stdout, new RegExp(`^${name}\\s`, 'm'), `kubectl api-resources lists ${name}`);
    }
    const { stdout: version } = await kubectl('version', '-o', 'json');
    assert.equal((JSON.parse(version) as { serverVersion: { minor: string } }).serverVersion.minor, '32');
  });

  it('lists pods of all namespaces as JSON, the same objects the server holds', async () => {
    const { stdout } = await kubectl('get', 'pods', '-A', '-o', 'json');
    const items = (JSON.parse(stdout) as { items: KubeItem[] }).items;
    const held = api.server.list('v1', 'Pod');
    assert.equal(items.length, 6);
    assert.deepEqual(
      items.map((i) => [i.kind, i.apiVersion, i.metadata.namespace, i.metadata.name, i.metadata.uid, i.metadata.resourceVersion, i.metadata.labels]),
      held.map((o) => ['Pod', 'v1', o.metadata.namespace, o.metadata.name, o.metadata.uid, o.metadata.resourceVersion, o.metadata.labels]),
    );
  });

  it('pages a list with limit/continue (kubectl --chunk-size) and still sees every pod once', async () => {
    const { stdout } = await kubectl('get', 'pods', '-A', '-o', 'json', '--chunk-size=4');
    const names = (JSON.parse(stdout) as { items: KubeItem[] }).items.map((i) => `${i.metadata.namespace}/${i.metadata.name}`);
    assert.deepEqual(names, ['x/a', 'x/b', 'x/c', 'y/a', 'y/b', 'y/c']);
    const pages = api.server.requests.filter((r) => r.path === '/api/v1/pods' && r.query.limit === '4');
    assert.equal(pages.length, 2, 'two pages requested');
    assert.ok(pages[1].query.continue, 'the second page carries the continue token');
  });

  it('prints network policies as the server-side Table (kubectl get networkpolicies -A)', async () => {
    const { stdout } = await kubectl('get', 'networkpolicies', '-A');
    const lines = stdout.trim().split('\n');
    assert.match(lines[0], /^NAMESPACE\s+NAME\s+POD-SELECTOR\s+AGE$/);
    assert.match(lines[1], /^x\s+allow-a\s+pod=a\s+\d+s$/);
    const { stdout: anp } = await kubectl('get', 'anp', '-o', 'json');
    const items = (JSON.parse(anp) as { items: KubeItem[] }).items;
    assert.deepEqual(items.map((i) => [i.kind, i.apiVersion, i.metadata.name]), [['AdminNetworkPolicy', 'policy.networking.k8s.io/v1alpha1', 'deny-app']]);
  });

  it('creates, patches and deletes through kubectl apply, label and delete', async () => {
    const file = join(api.dir, 'z.yaml');
    writeFileSync(
      file,
      'apiVersion: v1\nkind: Namespace\nmetadata: {name: z}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: z, labels: {app: web}}\nspec: {containers: [{name: c, image: img}]}\n',
    );
    // Client-side schema validation needs the protobuf OpenAPI document, which this server does not serve.
    await kubectl('apply', '--validate=false', '-f', file);
    assert.equal(api.server.list('v1', 'Pod', 'z').length, 1);
    assert.equal(api.server.list('v1', 'Namespace').find((n) => n.metadata.name === 'z')?.metadata.labels?.['kubernetes.io/metadata.name'], 'z');
    await kubectl('label', 'pod', '-n', 'z', 'web', 'tier=front');
    assert.deepEqual(api.server.list('v1', 'Pod', 'z')[0].metadata.labels, { app: 'web', tier: 'front' });
    const { stdout } = await kubectl('apply', '--validate=false', '-f', file);
    assert.match(stdout, /namespace\/z unchanged/);
    await kubectl('delete', 'namespace', 'z');
    assert.equal(api.server.list('v1', 'Pod', 'z').length, 0, 'deleting a namespace deletes its pods');
    // A pod in a namespace that does not exist is refused, as the NamespaceLifecycle admission does.
    await assert.rejects(kubectl('apply', '--validate=false', '-f', file.replace('z.yaml', 'missing.yaml')));
    writeFileSync(join(api.dir, 'orphan.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: o, namespace: nowhere}\nspec: {containers: [{name: c, image: img}]}\n');
    await assert.rejects(kubectl('create', '--validate=false', '-f', join(api.dir, 'orphan.yaml')), /namespaces "nowhere" not found/);
  });

  it('watches pods (kubectl get pods -A -w -o json) and sees every change once, in order', async () => {
    const child = spawn(KUBECTL, ['--kubeconfig', api.kubeconfig, 'get', 'pods', '-A', '-w', '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString('utf8')));
    try {
      await waitFor('the initial list', () => splitJsonStream(out).length >= 6);
      const added = api.server.create(pod('y', 'd', { labels: { pod: 'd' } }));
      const changed = api.server.update({ ...api.server.list('v1', 'Pod', 'x')[0], metadata: { ...api.server.list('v1', 'Pod', 'x')[0].metadata, labels: { pod: 'a', v: '2' } } });
      const gone = api.server.delete('v1', 'Pod', 'y', 'b');
      await waitFor('three watch events', () => splitJsonStream(out).length >= 9);
      await new Promise((r) => setTimeout(r, 300));
      const seen = splitJsonStream(out) as KubeItem[];
      assert.equal(seen.length, 9, 'nothing more than the list and the three events');
      assert.deepEqual(
        seen.slice(6).map((o) => [o.metadata.namespace, o.metadata.name, o.metadata.resourceVersion, o.metadata.labels]),
        [
          ['y', 'd', added.metadata.resourceVersion, { pod: 'd' }],
          ['x', 'a', changed.metadata.resourceVersion, { pod: 'a', v: '2' }],
          ['y', 'b', gone.metadata.resourceVersion, { pod: 'b' }],
        ],
      );
      const watch = api.server.requests.find((r) => r.path === '/api/v1/pods' && r.query.watch === 'true');
      assert.ok(watch?.query.resourceVersion, 'kubectl watched from the resourceVersion of its list');
    } finally {
      child.kill('SIGTERM');
    }
  });

  it('refuses a wrong bearer token with 401, as kubectl reports it', async () => {
    const bad = writeKubeconfig(join(api.dir, 'bad-kubeconfig'), { server: api.server.url, token: 'wrong', ca: api.ca });
    await assert.rejects(run(KUBECTL, ['--kubeconfig', bad, 'get', 'pods', '-A'], { timeout: 30_000 }), /Unauthorized|must be logged in/);
  });
});
