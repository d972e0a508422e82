// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// The cluster manifests (deploy/) and `weir install --dry-run`: rendered by kubectl's own
// kustomize and by weir (the same objects), every object checked against the Kubernetes
// types (a typo'd field or a wrong type fails), least-privilege RBAC that matches what the
// Kubernetes source reads, and the agent's DaemonSet as a node agent needs it.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { containersOf, deployDir, kustomize, renderInstall, validateManifest, type Manifest } from '../src/install/index.js';
import { byId, clusterRoleBindings, danglingReferences, grantedPermissions, manifestId as id, sourcePermissions } from './helpers/manifests.js';

const run = promisify(execFile);
const KUBECTL = '/usr/bin/kubectl';
const OVERLAYS = ['default', 'with-crds', 'kube-proxy-replacement'];

async function weir(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/weir.js', ...args], { timeout: 60_000 });
    return { stdout, stderr, code: 0 };
  } catch (e) {
    const err = e as { stdout: string; stderr: string; code: number };
    return { stdout: err.stdout, stderr: err.stderr, code: err.code };
  }
}

describe('cluster manifests', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'weir-install-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  for (const overlay of OVERLAYS) {
    it(`renders overlay ${overlay} exactly as kubectl kustomize does`, { skip: !existsSync(KUBECTL) && 'kubectl not installed' }, async () => {
      const { stdout } = await run(KUBECTL, ['kustomize', join(deployDir(), 'overlays', overlay)], { timeout: 60_000 });
      const theirs = byId(parseAllDocuments(stdout).map((d) => d.toJS() as Manifest));
      const ours = byId(kustomize(join(deployDir(), 'overlays', overlay)));
      assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
      for (const [k, v] of theirs) assert.deepEqual(ours.get(k), v, k);
    });
  }

  it('validates every object of every overlay against the Kubernetes types', () => {
    for (const overlay of OVERLAYS) {
      const r = renderInstall({ overlay });
      assert.deepEqual(r.problems, [], overlay);
      const kinds = new Set(r.objects.map((o) => o.kind));
      for (const k of ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'DaemonSet', 'Deployment', 'Service']) assert.ok(kinds.has(k), `${overlay} has a ${k}`);
      if (overlay === 'with-crds') assert.equal(r.objects.filter((o) => o.kind === 'CustomResourceDefinition').length, 2);
      // Every role, service account and ConfigMap (and key) named resolves; the token Secret is the user's.
      assert.deepEqual(danglingReferences(r.objects, ['weir-token']), [], overlay);
    }
  });

  it('fails on a typo in a field name and on a value of the wrong type', async () => {
    const copy = join(tmp, 'deploy');
    cpSync(deployDir(), copy, { recursive: true });
    const agent = join(copy, 'base', 'agent.yaml');
    writeFileSync(agent, readFileSync(agent, 'utf8').replace('hostNetwork: true', 'hostNetwrok: true'));
    const server = join(copy, 'base', 'server.yaml');
    writeFileSync(server, readFileSync(server, 'utf8').replace('replicas: 1', 'replicas: "1"').replace('containerPort: 7680', 'containerPort: 7680\n              hostPortt: 80'));
    const r = renderInstall({ from: join(copy, 'overlays', 'default') });
    assert.deepEqual(r.problems, [
      'DaemonSet weir/weir-agent: spec.template.spec.hostNetwrok: unknown field "hostNetwrok" (V1PodSpec has no such field)',
      'Deployment weir/weir-server: spec.replicas: expected a number, got string',
      'Deployment weir/weir-server: spec.template.spec.containers[0].ports[0].hostPortt: unknown field "hostPortt" (V1ContainerPort has no such field)',
    ]);
    // The same through the CLI: nothing printed, exit 2, the object and field named.
    const out = await weir('install', '--dry-run', '--from', join(copy, 'overlays', 'default'));
    assert.equal(out.code, 2);
    assert.equal(out.stdout, '');
    assert.match(out.stderr, /DaemonSet weir\/weir-agent: spec\.template\.spec\.hostNetwrok: unknown field/);
    // In a CRD's schema too: a misspelt JSONSchemaProps keyword.
    const crd = join(copy, 'crds', 'adminnetworkpolicies.yaml');
    writeFileSync(crd, readFileSync(crd, 'utf8').replace('maxItems: 100', 'maxItem: 100'));
    const c = renderInstall({ from: join(copy, 'overlays', 'with-crds') });
    assert.ok(c.problems.some((p) => /CustomResourceDefinition adminnetworkpolicies\.policy\.networking\.k8s\.io: spec\.versions\[0\]\.schema\.openAPIV3Schema\.properties\.spec\.properties\.\w+\.maxItem: unknown field/.test(p)), c.problems.join('\n'));
    assert.deepEqual(validateManifest({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w' } }), ['Widget w: no Kubernetes schema for example.com/v1 Widget']);
  });

  it('grants read-only list/watch on exactly the kinds the Kubernetes source reads, and create on Events', () => {
    const { objects } = renderInstall();
    const { granted, wildcards } = grantedPermissions(objects);
    assert.deepEqual(wildcards, [], 'no wildcard');
    assert.deepEqual(granted, sourcePermissions());
    // The agent gets both roles, the server only the read role.
    assert.deepEqual(clusterRoleBindings(objects), ['weir-agent → weir-events', 'weir-agent → weir-read', 'weir-server → weir-read']);
  });

  it('runs the agent on every node with the host network, NET_ADMIN, limits and local probes', () => {
    const { objects } = renderInstall();
    const ds = objects.find((o) => o.kind === 'DaemonSet');
    assert.ok(ds);
    const spec = (ds.spec as { template: { spec: Record<string, unknown> } }).template.spec;
    assert.equal(spec.hostNetwork, true);
    assert.deepEqual(spec.tolerations, [{ operator: 'Exists' }], 'tolerates every taint');
    const [c] = spec.containers as {
      securityContext: { capabilities: { add: string[]; drop: string[] }; privileged: boolean };
      resources: { requests: Record<string, string>; limits: Record<string, string> };
      readinessProbe: { httpGet: { host: string; path: string; port: number } };
      livenessProbe: { httpGet: { host: string; path: string; port: number } };
    }[];
    assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'], add: ['NET_ADMIN'] });
    assert.equal(c.securityContext.privileged, false);
    const settings = parse((objects.find((o) => o.kind === 'ConfigMap')?.data as Record<string, string>)['settings.yaml']) as { healthPort: number };
    for (const probe of [c.readinessProbe, c.livenessProbe]) {
      assert.equal(probe.httpGet.host, '127.0.0.1');
      assert.equal(probe.httpGet.port, settings.healthPort, 'probes the health port of the settings');
    }
    assert.deepEqual([c.readinessProbe.httpGet.path, c.livenessProbe.httpGet.path], ['/readyz', '/livez']);
    // Flows: the agent ships to the settings' server with the token of the Secret the server reads.
    const agentSpec = spec as { containers: { args: string[]; volumeMounts: { name: string; mountPath: string }[] }[]; volumes: { name: string; secret?: { secretName: string } }[] };
    const [agentC] = agentSpec.containers;
    const tokenFile = agentC.args[agentC.args.indexOf('--token-file') + 1] ?? '';
    const mount = agentC.volumeMounts.find((m) => tokenFile.startsWith(`${m.mountPath}/`));
    assert.ok(mount, `--token-file ${tokenFile} lies in a mounted volume`);
    assert.equal(agentSpec.volumes.find((v) => v.name === mount.name)?.secret?.secretName, 'weir-token');
    const serverPod = (objects.find((o) => o.kind === 'Deployment')?.spec as { template: { spec: { volumes: { secret?: { secretName: string } }[] } } }).template.spec;
    assert.ok(serverPod.volumes.some((v) => v.secret?.secretName === 'weir-token'), 'the server reads the same Secret');
    assert.match((parse((objects.find((o) => o.kind === 'ConfigMap')?.data as Record<string, string>)['settings.yaml']) as { server: string }).server, /^http:\/\/weir-server\.weir\.svc:7680$/);
    assert.ok(agentC.args.includes('--query-address'), 'raw records queryable on the node address for the fan-out');
    for (const w of objects.filter((o) => containersOf(o).length > 0)) {
      for (const ct of (w.spec as { template: { spec: { containers: { resources: { requests?: object; limits?: object } }[] } } }).template.spec.containers) {
        assert.ok(ct.resources.requests && ct.resources.limits, `${id(w)} has requests and limits`);
      }
    }
  });

  it('the kube-proxy-replacement overlay turns on --services and points the agents at the API server directly; the others never DNAT', async () => {
    const agentOf = (objects: readonly Manifest[]) => {
      const ds = objects.find((o) => o.kind === 'DaemonSet');
      assert.ok(ds);
      return (ds.spec as { template: { spec: { containers: { args: string[]; env: { name: string; valueFrom?: { configMapKeyRef?: { name: string; key: string } } }[] }[] } } }).template.spec.containers[0];
    };
    for (const overlay of ['default', 'with-crds']) assert.ok(!agentOf(renderInstall({ overlay }).objects).args.includes('--services'), `${overlay}: policy only, beside kube-proxy`);
    const out = await weir('install', '--dry-run', '--overlay', 'kube-proxy-replacement', '--namespace', 'netsec');
    assert.equal(out.code, 0, out.stderr);
    const objects = parseAllDocuments(out.stdout).map((d) => d.toJS() as Manifest);
    assert.ok(objects.every((o) => validateManifest(o).length === 0));
    const c = agentOf(objects);
    assert.equal(c.args.filter((a) => a === '--services').length, 1);
    const refs = Object.fromEntries(c.env.filter((e) => e.name.startsWith('KUBERNETES_SERVICE_')).map((e) => [e.name, e.valueFrom?.configMapKeyRef]));
    assert.deepEqual(refs, { KUBERNETES_SERVICE_HOST: { name: 'weir-apiserver', key: 'host' }, KUBERNETES_SERVICE_PORT: { name: 'weir-apiserver', key: 'port' } });
    const cm = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'weir-apiserver');
    assert.equal(cm?.metadata.namespace, 'netsec', 'the ConfigMap the env reads lives beside the DaemonSet');
    // weir's renderer refuses what it does not implement rather than ignoring it.
    const copy = join(tmp, 'kpr');
    cpSync(deployDir(), copy, { recursive: true });
    const k = join(copy, 'overlays', 'kube-proxy-replacement', 'kustomization.yaml');
    writeFileSync(k, readFileSync(k, 'utf8').replace('name: weir-agent', 'name: weir-agnet'));
    assert.throws(() => renderInstall({ from: join(copy, 'overlays', 'kube-proxy-replacement') }), /patches\[0\]: no DaemonSet weir-agnet to patch/);
    writeFileSync(k, readFileSync(k, 'utf8').replace('name: weir-agnet', 'name: weir-agent').replace('/containers/0/args/-', '/containers/0/argz/-'));
    assert.throws(() => renderInstall({ from: join(copy, 'overlays', 'kube-proxy-replacement') }), /path "\/spec\/template\/spec\/containers\/0\/argz\/-" does not exist in DaemonSet weir-agent/);
  });

  it('weir install --dry-run renders for another namespace and image', async () => {
    const out = await weir('install', '--dry-run', '--namespace', 'netsec', '--image', 'registry.example/weir:1.2.3', '--overlay', 'with-crds');
    assert.equal(out.code, 0, out.stderr);
    const objects = parseAllDocuments(out.stdout).map((d) => d.toJS() as Manifest);
    assert.equal(objects.length, 14);
    assert.ok(objects.every((o) => validateManifest(o).length === 0));
    assert.deepEqual(objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata.name), ['netsec']);
    for (const o of objects) {
      if (['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition'].includes(o.kind)) assert.equal(o.metadata.namespace, undefined, id(o));
      else assert.equal(o.metadata.namespace, 'netsec', id(o));
      for (const c of containersOf(o)) assert.equal(c.image, 'registry.example/weir:1.2.3');
    }
    for (const b of objects.filter((o) => o.kind === 'ClusterRoleBinding')) assert.equal((b.subjects as { namespace: string }[])[0].namespace, 'netsec');
    assert.doesNotMatch(out.stdout, /\bweir\.svc\b|namespace: weir\b/);
    assert.match(out.stdout, /server: http:\/\/weir-server\.netsec\.svc:7680/);
    const bad = await weir('install', '--dry-run', '--namespace', 'Not_Valid');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid --namespace "Not_Valid"/);
    const noDry = await weir('install');
    assert.equal(noDry.code, 2);
    assert.match(noDry.stderr, /add --dry-run/);
  });
});
