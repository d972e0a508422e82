// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// Reading snapshots as users dump them (issue 8): typed list responses of the API server,
// pods grouped into their controllers with np-guard's names, folders with links, stray files
// and FIFOs, manifests the API server rejects for form, KubeVirt VMs, huge replica counts.
// Every case runs the real CLI (`node bin/weir.js`) on files the test writes, and checks the
// exact connectivity list.

import { weir, type CliResult } from './helpers/cli.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { stringify } from 'yaml';
import { loadManifestText } from '../src/load/index.js';
import { planLab } from '../src/lab/plan.js';
import { ValidationError } from '../src/model/diagnostics.js';

const lines = (r: CliResult) => r.stdout.trimEnd().split('\n');
const ANY = '0.0.0.0-255.255.255.255[External]';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'weir-snapshot-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function folder(name: string, files: Record<string, string>): Promise<string> {
  const d = join(dir, name);
  await mkdir(d, { recursive: true });
  for (const [f, text] of Object.entries(files)) {
    await mkdir(join(d, f, '..'), { recursive: true });
    await writeFile(join(d, f), text);
  }
  return d;
}

// ------------------------------------------------------------ a typed dump of a cluster

/** A pod as the API server returns it in a PodList: no apiVersion/kind, status, managed fields. */
function pod(name: string, labels: Record<string, string>, owner: { kind: string; name: string } | undefined, ip: string, ports: number[] = []): unknown {
  return {
    metadata: {
      name,
      namespace: 'shop',
      uid: `uid-${name}`,
      resourceVersion: '4711',
      creationTimestamp: '2026-11-30T10:00:00Z',
      labels,
      ...(owner ? { ownerReferences: [{ apiVersion: owner.kind === 'Job' ? 'batch/v1' : 'apps/v1', kind: owner.kind, name: owner.name, uid: `uid-${owner.name}`, controller: true, blockOwnerDeletion: true }] } : {}),
      managedFields: [{ manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': {} } }],
    },
    spec: {
      containers: [{ name: 'c', image: 'registry.example/app:1', ports: ports.map((p) => ({ containerPort: p, protocol: 'TCP' })), resources: {} }],
      nodeName: 'node-1',
      restartPolicy: 'Always',
    },
    status: { phase: 'Running', hostIP: '192.168.0.10', podIP: ip, podIPs: [{ ip }] },
  };
}

const typedList = (kind: string, apiVersion: string, items: unknown[]) => JSON.stringify({ kind, apiVersion, metadata: { resourceVersion: '4711' }, items }, null, 4);

const PODS = typedList('PodList', 'v1', [
  pod('web-7d4f8b9c-abcde', { app: 'web', 'pod-template-hash': '7d4f8b9c' }, { kind: 'ReplicaSet', name: 'web-7d4f8b9c' }, '10.244.1.5', [8080]),
  pod('web-7d4f8b9c-fghij', { app: 'web', 'pod-template-hash': '7d4f8b9c' }, { kind: 'ReplicaSet', name: 'web-7d4f8b9c' }, '10.244.2.7', [8080]),
  pod('log-agent-x1x1x', { app: 'log', 'controller-revision-hash': 'aa' }, { kind: 'DaemonSet', name: 'log-agent' }, '10.244.1.9'),
  pod('log-agent-y2y2y', { app: 'log', 'controller-revision-hash': 'aa' }, { kind: 'DaemonSet', name: 'log-agent' }, '10.244.2.9'),
  pod('backup-29400-q7q7q', { app: 'backup', 'job-name': 'backup-29400' }, { kind: 'Job', name: 'backup-29400' }, '10.244.1.11'),
  pod('debug', { app: 'debug' }, undefined, '10.244.2.12'),
]);
const NAMESPACES = typedList('NamespaceList', 'v1', [{ metadata: { name: 'shop', labels: { 'kubernetes.io/metadata.name': 'shop' } }, spec: {}, status: { phase: 'Active' } }]);
const POLICIES = typedList('NetworkPolicyList', 'networking.k8s.io/v1', [
  {
    metadata: { name: 'web-from-backup', namespace: 'shop', generation: 1 },
    spec: {
      podSelector: { matchLabels: { app: 'web' } },
      policyTypes: ['Ingress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'backup' } } }], ports: [{ port: 8080, protocol: 'TCP' }] }],
    },
  },
]);

describe('a typed dump of a live cluster', () => {
  it('reads PodList/NamespaceList/NetworkPolicyList items without apiVersion/kind; pods are named by their controllers', async () => {
    const d = await folder('typed', { 'namespaces.json': NAMESPACES, 'pods.json': PODS, 'policies.json': POLICIES });
    const r = await weir(['analyze', d]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), [
      `${ANY} => shop/backup-29400[Job] : All Connections`,
      `${ANY} => shop/debug[Pod] : All Connections`,
      `${ANY} => shop/log-agent[DaemonSet] : All Connections`,
      `shop/backup-29400[Job] => ${ANY} : All Connections`,
      'shop/backup-29400[Job] => shop/debug[Pod] : All Connections',
      'shop/backup-29400[Job] => shop/log-agent[DaemonSet] : All Connections',
      'shop/backup-29400[Job] => shop/web-7d4f8b9c[ReplicaSet] : TCP 8080',
      `shop/debug[Pod] => ${ANY} : All Connections`,
      'shop/debug[Pod] => shop/backup-29400[Job] : All Connections',
      'shop/debug[Pod] => shop/log-agent[DaemonSet] : All Connections',
      `shop/log-agent[DaemonSet] => ${ANY} : All Connections`,
      'shop/log-agent[DaemonSet] => shop/backup-29400[Job] : All Connections',
      'shop/log-agent[DaemonSet] => shop/debug[Pod] : All Connections',
      `shop/web-7d4f8b9c[ReplicaSet] => ${ANY} : All Connections`,
      'shop/web-7d4f8b9c[ReplicaSet] => shop/backup-29400[Job] : All Connections',
      'shop/web-7d4f8b9c[ReplicaSet] => shop/debug[Pod] : All Connections',
      'shop/web-7d4f8b9c[ReplicaSet] => shop/log-agent[DaemonSet] : All Connections',
    ]);
  });

  it('follows owners that are in the input up: ReplicaSet → Deployment, Job → CronJob', async () => {
    const rs = typedList('ReplicaSetList', 'apps/v1', [
      {
        metadata: { name: 'web-7d4f8b9c', namespace: 'shop', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: 'd1', controller: true }] },
        spec: { replicas: 2, selector: { matchLabels: { app: 'web' } }, template: { metadata: { labels: { app: 'web' } }, spec: { containers: [{ name: 'c', ports: [{ containerPort: 8080 }] }] } } },
      },
    ]);
    const jobs = typedList('JobList', 'batch/v1', [
      {
        metadata: { name: 'backup-29400', namespace: 'shop', ownerReferences: [{ apiVersion: 'batch/v1', kind: 'CronJob', name: 'backup', uid: 'c1', controller: true }] },
        spec: { template: { metadata: { labels: { app: 'backup' } }, spec: { containers: [{ name: 'c' }] } } },
      },
    ]);
    const d = await folder('typed-owners', { 'namespaces.json': NAMESPACES, 'pods.json': PODS, 'policies.json': POLICIES, 'rs.json': rs, 'jobs.json': jobs });
    const r = await weir(['analyze', d, '--focus-workload', 'shop/web']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), [
      'shop/backup[CronJob] => shop/web[Deployment] : TCP 8080',
      `shop/web[Deployment] => ${ANY} : All Connections`,
      'shop/web[Deployment] => shop/backup[CronJob] : All Connections',
      'shop/web[Deployment] => shop/debug[Pod] : All Connections',
      'shop/web[Deployment] => shop/log-agent[DaemonSet] : All Connections',
    ]);
  });

  it('kind: List items keep their own kind; a YAML dump reads the same as JSON', async () => {
    const list = {
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'Pod', ...(pod('debug', { app: 'debug' }, undefined, '10.244.2.12') as object) },
        { apiVersion: 'v1', kind: 'Pod', ...(pod('db-0', { app: 'db' }, { kind: 'StatefulSet', name: 'db' }, '10.244.2.13') as object) },
      ],
    };
    const d = await folder('kind-list', { 'snap.json': JSON.stringify(list), 'snap.yaml': stringify(list) });
    const r = await weir(['analyze', join(d, 'snap.json')]);
    assert.equal(r.code, 0, r.stderr);
    const y = await weir(['analyze', join(d, 'snap.yaml')]);
    assert.equal(y.stdout, r.stdout);
    assert.deepEqual(lines(r), [
      `${ANY} => shop/db[StatefulSet] : All Connections`,
      `${ANY} => shop/debug[Pod] : All Connections`,
      `shop/db[StatefulSet] => ${ANY} : All Connections`,
      'shop/db[StatefulSet] => shop/debug[Pod] : All Connections',
      `shop/debug[Pod] => ${ANY} : All Connections`,
      'shop/debug[Pod] => shop/db[StatefulSet] : All Connections',
    ]);
  });

  it('pods of one owner whose labels differ where a policy looks: a warning naming the pods, each pod listed where it differs', async () => {
    const pods = typedList('PodList', 'v1', [
      pod('web-7d4f8b9c-abcde', { app: 'web' }, { kind: 'ReplicaSet', name: 'web-7d4f8b9c' }, '10.244.1.5', [8080]),
      pod('web-7d4f8b9c-fghij', { app: 'web', canary: 'true' }, { kind: 'ReplicaSet', name: 'web-7d4f8b9c' }, '10.244.2.7', [8080]),
      pod('debug', { app: 'debug' }, undefined, '10.244.2.12'),
    ]);
    const deny = typedList('NetworkPolicyList', 'networking.k8s.io/v1', [
      { metadata: { name: 'canary-closed', namespace: 'shop' }, spec: { podSelector: { matchLabels: { canary: 'true' } }, policyTypes: ['Ingress'] } },
    ]);
    const d = await folder('labels-differ', { 'pods.json': pods, 'policies.json': deny });
    const r = await weir(['analyze', d, '--focus-workload', 'debug']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: ReplicaSet shop\/web-7d4f8b9c: pods shop\/web-7d4f8b9c-abcde \(no label canary\) and shop\/web-7d4f8b9c-fghij \(canary=true\) of ReplicaSet shop\/web-7d4f8b9c have different labels/);
    assert.deepEqual(lines(r), [
      `${ANY} => shop/debug[Pod] : All Connections`,
      `shop/debug[Pod] => ${ANY} : All Connections`,
      'shop/debug[Pod] => shop/web-7d4f8b9c-abcde[Pod] : All Connections',
      'shop/web-7d4f8b9c-abcde[Pod] => shop/debug[Pod] : All Connections',
      'shop/web-7d4f8b9c-fghij[Pod] => shop/debug[Pod] : All Connections',
    ]);
  });
});

// ------------------------------------------------------------------------------- folders

const NS_YAML = 'apiVersion: v1\nkind: Namespace\nmetadata: { name: app }\n';
const PODS_YAML = `apiVersion: v1
kind: Pod
metadata: { name: client, namespace: app, labels: { role: client } }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: api, namespace: app }
spec:
  replicas: 3
  selector: { matchLabels: { role: api } }
  template:
    metadata: { labels: { role: api } }
    spec: { containers: [{ name: c, ports: [{ containerPort: 9000 }] }] }
`;
const POLICY_YAML = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: api-in, namespace: app }
spec:
  podSelector: { matchLabels: { role: api } }
  policyTypes: [Ingress, Egress]
  ingress: [{ from: [{ podSelector: { matchLabels: { role: client } } }], ports: [{ port: 9000 }] }]
`;
const FOLDER_LINES = [
  `${ANY} => app/client[Pod] : All Connections`,
  `app/client[Pod] => ${ANY} : All Connections`,
  'app/client[Pod] => app/api[Deployment] : TCP 9000',
];

describe('folders as users have them', () => {
  it('a ConfigMap mount (..data plus links) is read through its links, once, with loops cut', async () => {
    const d = await folder('configmap', {
      '..2026_11_30_10_00_00.123/namespace.yaml': NS_YAML,
      '..2026_11_30_10_00_00.123/pods.yaml': PODS_YAML,
      '..2026_11_30_10_00_00.123/policy.yaml': POLICY_YAML,
    });
    await symlink('..2026_11_30_10_00_00.123', join(d, '..data'));
    for (const f of ['namespace.yaml', 'pods.yaml', 'policy.yaml']) await symlink(join('..data', f), join(d, f));
    await symlink('.', join(d, 'loop')); // a link back to the folder itself
    await symlink('nowhere.yaml', join(d, 'dangling.yaml'));
    // The same file named twice (the folder and one of its files) is read once.
    const r = await weir(['analyze', d, join(d, 'policy.yaml'), join(d, '..data', 'pods.yaml')]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), FOLDER_LINES);
    assert.doesNotMatch(r.stderr, /duplicate/);
    assert.match(r.stderr, /loop: notice: symbolic link leads back to .*; not followed again \[link-loop\]/);
    assert.match(r.stderr, /dangling\.yaml: warning: symbolic link points nowhere/);
  });

  it('files that are not Kubernetes objects get a notice and are skipped', async () => {
    const d = await folder('stray', {
      'app.yaml': `${NS_YAML}---\n${PODS_YAML}---\n${POLICY_YAML}`,
      // np-guard's own JSON output (an array), another tool's report, a Helm chart's files.
      'connlist.json': JSON.stringify([{ src: 'a', dst: 'b', conn: 'All Connections' }]),
      'report.json': JSON.stringify({ tool: 'scanner', findings: [] }, null, 2),
      'Chart.yaml': 'apiVersion: v2\nname: shop\nversion: 0.1.0\n',
      'values.yaml': 'replicaCount: 1\n',
      'README.yaml': '### This folder holds the shop policies.\n### Written as YAML comments, as some repositories do.\n',
    });
    const r = await weir(['analyze', d]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), FOLDER_LINES);
    for (const f of ['connlist.json', 'report.json', 'Chart.yaml', 'values.yaml']) {
      assert.match(r.stderr, new RegExp(`${f}:1: notice: not a Kubernetes object .*; skipped \\[not-a-manifest\\]`), f);
    }
    assert.match(r.stderr, /README\.yaml: notice: no Kubernetes objects in this file \(empty, or only comments\); skipped \[not-a-manifest\]/);
  });

  it('a FIFO is refused, never waited on; so is a link loop given as the path', async () => {
    const d = await folder('fifo', { 'app.yaml': `${NS_YAML}---\n${PODS_YAML}---\n${POLICY_YAML}` });
    execFileSync('mkfifo', [join(d, 'snap.yaml')]);
    const started = Date.now();
    const inFolder = await weir(['analyze', d]);
    assert.equal(inFolder.code, 2, inFolder.stderr);
    assert.deepEqual(lines(inFolder), FOLDER_LINES);
    assert.match(inFolder.stderr, /snap\.yaml is a FIFO, not a regular file; refused .*\[not-a-regular-file\]/);
    const direct = await weir(['analyze', join(d, 'snap.yaml')]);
    assert.equal(direct.code, 2);
    assert.match(direct.stderr, /is a FIFO, not a regular file/);
    assert.ok(Date.now() - started < 60_000);
    await symlink('self', join(dir, 'self'));
    const loop = await weir(['analyze', join(dir, 'self')]);
    assert.equal(loop.code, 2, loop.stderr);
    assert.match(loop.stderr, /error: cannot read: .*ELOOP.* \[read-error\]/);
    assert.doesNotMatch(loop.stderr, /internal error/i);
  });

  it('an unreadable folder is an input error (exit 2), never an internal error', async () => {
    const d = await folder('unreadable', { 'ok/app.yaml': `${NS_YAML}---\n${PODS_YAML}---\n${POLICY_YAML}` });
    await mkdir(join(d, 'locked'), { mode: 0o000 });
    const root = process.getuid?.() === 0;
    if (root) for (const p of [dir, d, join(d, 'ok')]) await chmod(p, 0o755);
    await chmod(join(d, 'ok', 'app.yaml'), 0o644);
    const r = await weir(['analyze', d], {}, root ? { asUser: 65534 } : {});
    await chmod(join(d, 'locked'), 0o755); // so the cleanup can remove it
    assert.equal(r.code, 2, r.stderr);
    assert.deepEqual(lines(r), FOLDER_LINES);
    assert.match(r.stderr, /locked: error: cannot read folder: EACCES: permission denied.* \[read-error\]/);
    assert.doesNotMatch(r.stderr, /internal error/i);
  });

  it('a YAML file too big to parse safely is refused with its size and the limit', async () => {
    const d = await folder('big', {});
    const big = join(d, 'huge.yaml');
    await writeFile(big, `# ${'x'.repeat(1024)}\n`.repeat(9 * 1024));
    const r = await weir(['analyze', big]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /huge\.yaml is 9\.0 MB of YAML; weir reads YAML files up to 8\.0 MB .* \[file-too-large\]/);
  });
});

// ------------------------------------------------------ lenient where meaning is plain

describe('what the API server rejects for form: read with a warning, a lint error', () => {
  const ANP = `apiVersion: v1
kind: Namespace
metadata: { name: x, labels: { team: red } }
---
apiVersion: v1
kind: Namespace
metadata: { name: y }
---
apiVersion: v1
kind: Pod
metadata: { name: a, namespace: x, labels: { app: a } }
---
apiVersion: v1
kind: Pod
metadata: { name: b, namespace: y, labels: { app: b } }
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: { name: red-only }
spec:
  priority: 10
  subject: { pods: { podSelector: { matchLabels: { app: a } } } }
  ingress:
    - { name: from-red, action: Allow, from: [{ pods: { namespaceSelector: { matchLabels: { team: red } } } }] }
    - { name: rest, action: Deny, from: [{ namespaces: {} }] }
  egress:
    - { name: out, action: Deny, to: [{ networks: [10.0.0.1/8] }] }
`;

  it('an ANP pods peer without podSelector (or subject without namespaceSelector) selects all, as np-guard reads it', async () => {
    const d = await folder('anp', { 'anp.yaml': ANP });
    const r = await weir(['analyze', d]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), [
      `${ANY} => x/a[Pod] : All Connections`,
      `${ANY} => y/b[Pod] : All Connections`,
      'x/a[Pod] => 0.0.0.0-9.255.255.255[External] : All Connections',
      'x/a[Pod] => 11.0.0.0-255.255.255.255[External] : All Connections',
      'x/a[Pod] => y/b[Pod] : All Connections',
      `y/b[Pod] => ${ANY} : All Connections`,
    ]);
    assert.match(r.stderr, /warning: AdminNetworkPolicy red-only: spec\.subject\.pods: pods\.namespaceSelector is missing/);
    assert.match(r.stderr, /warning: AdminNetworkPolicy red-only: spec\.ingress\[0\]\.from\[0\]\.pods: pods\.podSelector is missing/);
    assert.match(r.stderr, /warning: AdminNetworkPolicy red-only: spec\.egress\[0\]\.to\[0\]\.networks\[0\]: CIDR "10\.0\.0\.1\/8" has host bits set; it is treated as 10\.0\.0\.0\/8/);

    const lint = await weir(['lint', d, '--format', 'json']);
    assert.equal(lint.code, 1, lint.stderr);
    const errors = (JSON.parse(lint.stdout) as { severity: string; code: string }[]).filter((f) => f.severity === 'error').map((f) => f.code);
    assert.deepEqual(errors.sort(), ['anp-selector-missing', 'anp-selector-missing', 'cidr-host-bits']);
  });

  it('a name that is not RFC 1123, a port entry without containerPort, an owner reference without kind', () => {
    const r = loadManifestText(`apiVersion: apps/v1
kind: ReplicaSet
metadata: { name: Web_1, namespace: shop }
spec:
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: c, ports: [{ name: http }, { containerPort: 80 }] }] }
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1-abc
  namespace: shop
  labels: { app: web }
  ownerReferences: [{ name: Web_1, controller: true }]
spec: { containers: [{ name: c, ports: [{ containerPort: 80 }] }] }
`, 'm.yaml');
    assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'error'), []);
    assert.deepEqual(
      r.diagnostics.filter((d) => d.severity === 'warning').map((d) => [d.code, d.object, d.field]),
      [
        ['name-not-rfc1123', 'ReplicaSet shop/Web_1', 'metadata.name'],
        ['container-port-missing', 'ReplicaSet shop/Web_1', 'spec.template.spec.containers[0].ports[0]'],
        ['owner-kind-missing', 'Pod shop/web-1-abc', 'metadata.ownerReferences[0].kind'],
      ],
    );
    // The owner without kind is the one object of that name: the pod is counted through it.
    assert.deepEqual(r.cluster.pods.map((p) => [p.name, p.workload]), [['web-1-abc', 'shop/Web_1[ReplicaSet]']]);
    assert.deepEqual(r.cluster.workloads.map((w) => [w.kind, w.name, w.ports]), [['ReplicaSet', 'Web_1', [{ port: 80, protocol: 'TCP' }]]]);
  });
});

// ------------------------------------------------------------------ KubeVirt, replicas

describe('virtual machines beside containers', () => {
  const VM = `apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata: { name: db-vm, namespace: lab }
spec:
  runStrategy: Always
  template:
    metadata: { labels: { app: db, kubevirt.io/domain: db-vm } }
    spec:
      domain:
        devices:
          interfaces: [{ name: default, masquerade: {}, ports: [{ name: pg, port: 5432 }] }]
        resources: { requests: { memory: 1Gi } }
      networks: [{ name: default, pod: {} }]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: lab, labels: { app: client } }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: db, namespace: lab }
spec:
  podSelector: { matchLabels: { app: db } }
  ingress: [{ from: [{ podSelector: { matchLabels: { app: client } } }], ports: [{ port: pg }] }]
`;
  const VM_LINES = [
    `${ANY} => lab/client[Pod] : All Connections`,
    `lab/client[Pod] => ${ANY} : All Connections`,
    'lab/client[Pod] => lab/db-vm[VirtualMachine] : TCP 5432',
    `lab/db-vm[VirtualMachine] => ${ANY} : All Connections`,
    'lab/db-vm[VirtualMachine] => lab/client[Pod] : All Connections',
  ];

  it('a VirtualMachine is a workload selected by its template labels', async () => {
    const d = await folder('vm', { 'vm.yaml': VM });
    const r = await weir(['analyze', d]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), VM_LINES);
  });

  it('a running VM (VMI and virt-launcher pod in the dump) is still one VirtualMachine', async () => {
    const running = `${VM}---
apiVersion: kubevirt.io/v1
kind: VirtualMachineInstance
metadata:
  name: db-vm
  namespace: lab
  labels: { app: db, kubevirt.io/domain: db-vm }
  ownerReferences: [{ apiVersion: kubevirt.io/v1, kind: VirtualMachine, name: db-vm, uid: v1, controller: true }]
spec: { domain: { devices: { interfaces: [{ name: default, masquerade: {}, ports: [{ name: pg, port: 5432 }] }] } } }
status: { nodeName: node-1, interfaces: [{ ipAddress: 10.244.3.4 }] }
---
apiVersion: v1
kind: Pod
metadata:
  name: virt-launcher-db-vm-x8k2p
  namespace: lab
  labels: { app: db, kubevirt.io: virt-launcher, kubevirt.io/domain: db-vm }
  ownerReferences: [{ apiVersion: kubevirt.io/v1, kind: VirtualMachineInstance, name: db-vm, uid: i1, controller: true }]
spec: { containers: [{ name: compute, ports: [{ name: pg, containerPort: 5432 }] }] }
status: { podIP: 10.244.3.4 }
`;
    const d = await folder('vm-running', { 'vm.yaml': running });
    const r = await weir(['analyze', d]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), VM_LINES);
  });
});

describe('expansion costs what the answer needs', () => {
  const HUGE = `apiVersion: apps/v1
kind: Deployment
metadata: { name: swarm, namespace: big }
spec:
  replicas: 2147483647
  template:
    metadata: { labels: { app: swarm } }
    spec: { containers: [{ name: c, ports: [{ containerPort: 80 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: one, namespace: big, labels: { app: one } }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: swarm, namespace: big }
spec:
  podSelector: { matchLabels: { app: swarm } }
  ingress: [{ from: [{ podSelector: { matchLabels: { app: one } } }] }]
`;

  it('replicas: 2147483647 is counted, not materialised', async () => {
    const d = await folder('huge', { 'huge.yaml': HUGE });
    const r = await weir(['analyze', d]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), [
      `${ANY} => big/one[Pod] : All Connections`,
      `big/one[Pod] => ${ANY} : All Connections`,
      'big/one[Pod] => big/swarm[Deployment] : All Connections',
      `big/swarm[Deployment] => ${ANY} : All Connections`,
      'big/swarm[Deployment] => big/one[Pod] : All Connections',
    ]);
    const loaded = loadManifestText(HUGE, 'huge.yaml');
    assert.deepEqual(loaded.cluster.pods.map((p) => [p.name, p.replicas]), [['one', undefined], ['swarm-0', 2147483647]]);
  });

  it('the lab, which runs real pods, refuses it with a clear limit', () => {
    const { cluster } = loadManifestText(HUGE, 'huge.yaml');
    assert.throws(
      () => planLab(cluster, { dir: join(dir, 'lab') }),
      (e: unknown) => e instanceof ValidationError && /lab-too-many-pods/.test(e.message) && /big\/swarm\[Deployment\] asks for 2147483647 replicas/.test(e.message),
    );
    const small = loadManifestText(HUGE.replace('2147483647', '3'), 'small.yaml').cluster;
    const plan = planLab(small, { dir: join(dir, 'lab') });
    assert.deepEqual(plan.state.pods.map((p) => p.name).sort(), ['one', 'swarm-0', 'swarm-1', 'swarm-2']);
  });
});

describe('owner references without kind, as in np-guard test manifests', () => {
  it('pods whose controller has no kind and is not in the input are one workload named as np-guard names it', async () => {
    const d = await folder('owner-no-kind', {
      'pods.yaml': `apiVersion: v1
kind: Pod
metadata:
  name: pod-1
  labels: { security: internal, app: command }
  ownerReferences: [{ name: internal-security, controller: true }]
---
apiVersion: v1
kind: Pod
metadata:
  name: pod-2
  labels: { security: internal, app: query }
  ownerReferences: [{ name: internal-security, controller: true }]
---
apiVersion: v1
kind: Pod
metadata: { name: pod-3, labels: { app: pod3 } }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: internal }
spec:
  podSelector: { matchLabels: { security: internal } }
  ingress: [{ from: [{ podSelector: { matchLabels: { app: pod3 } } }], ports: [{ port: 80 }] }]
`,
    });
    const r = await weir(['analyze', d]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r), [
      `${ANY} => default/pod-3[Pod] : All Connections`,
      `default/internal-security[Pod] => ${ANY} : All Connections`,
      'default/internal-security[Pod] => default/pod-3[Pod] : All Connections',
      `default/pod-3[Pod] => ${ANY} : All Connections`,
      'default/pod-3[Pod] => default/internal-security[Pod] : TCP 80',
    ]);
    assert.equal((r.stderr.match(/\[owner-kind-missing\]/g) ?? []).length, 2);
  });
});
