// bench/read: reading a snapshot of a live cluster as the API server returns it — a typed
// PodList (items without apiVersion/kind, with ownerReferences, status and managedFields, as
// `kubectl get --raw /api/v1/pods` prints it, indented by 4 like `kubectl get -o json`) plus a
// NamespaceList — through loadManifests, the path every command takes. Pods belong to
// ReplicaSets (5 pods each), DaemonSets and Jobs. Each size runs in its own process so that
// peak memory is that size's alone. Goal (issue 8): 100k pods in ≤ 5 s and ≤ 1 GiB.
//
//   npx tsx bench/read.ts                   # 10k and 100k pods
//   npx tsx bench/read.ts --sizes 100000

import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadManifests } from '../src/load/index.js';

interface Figures {
  pods: number;
  fileMiB: number;
  readMs: number;
  cpuMs: number;
  peakRssMiB: number;
  workloads: number;
  modelPods: number;
}

function podList(n: number): string {
  const items: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const ns = `ns-${i % 200}`;
    const kind = i % 10 === 0 ? 'DaemonSet' : i % 10 === 1 ? 'Job' : 'ReplicaSet';
    const owner = kind === 'ReplicaSet' ? `app-${Math.floor(i / 5)}-7d4f8b9c` : kind === 'DaemonSet' ? 'node-agent' : `batch-${i}`;
    const app = kind === 'ReplicaSet' ? `app-${Math.floor(i / 5)}` : kind === 'DaemonSet' ? 'node-agent' : 'batch';
    const ip = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    items.push({
      metadata: {
        name: `${owner}-${i.toString(36).padStart(5, '0')}`,
        generateName: `${owner}-`,
        namespace: ns,
        uid: `6f1c2a4e-${i.toString(16).padStart(8, '0')}`,
        resourceVersion: String(100000 + i),
        creationTimestamp: '2026-11-30T10:00:00Z',
        labels: { app, 'pod-template-hash': '7d4f8b9c', tier: i % 3 === 0 ? 'frontend' : 'backend' },
        annotations: { 'kubectl.kubernetes.io/restartedAt': '2026-11-30T09:00:00Z' },
        ownerReferences: [{ apiVersion: kind === 'Job' ? 'batch/v1' : 'apps/v1', kind, name: owner, uid: `owner-${owner}`, controller: true, blockOwnerDeletion: true }],
        managedFields: [
          { manager: 'kube-controller-manager', operation: 'Update', apiVersion: 'v1', time: '2026-11-30T10:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:app': {} } } } },
        ],
      },
      spec: {
        containers: [
          {
            name: 'main',
            image: 'registry.example/app:1.2.3',
            ports: [{ name: 'http', containerPort: 8080, protocol: 'TCP' }, { name: 'metrics', containerPort: 9090, protocol: 'TCP' }],
            resources: { requests: { cpu: '100m', memory: '128Mi' } },
            terminationMessagePath: '/dev/termination-log',
            imagePullPolicy: 'IfNotPresent',
          },
        ],
        nodeName: `node-${i % 100}`,
        restartPolicy: 'Always',
        serviceAccountName: 'default',
        dnsPolicy: 'ClusterFirst',
      },
      status: { phase: 'Running', hostIP: `192.168.${(i >> 8) & 255}.${i % 100}`, podIP: ip, podIPs: [{ ip }], qosClass: 'Burstable' },
    });
  }
  return JSON.stringify({ kind: 'PodList', apiVersion: 'v1', metadata: { resourceVersion: '4711' }, items }, null, 4);
}

function namespaceList(): string {
  const items = Array.from({ length: 200 }, (_, i) => ({ metadata: { name: `ns-${i}`, labels: { 'kubernetes.io/metadata.name': `ns-${i}` } }, spec: { finalizers: ['kubernetes'] } }));
  return JSON.stringify({ kind: 'NamespaceList', apiVersion: 'v1', metadata: {}, items }, null, 4);
}

async function child(size: number, dir: string): Promise<void> {
  const file = join(dir, 'pods.json');
  const t = performance.now();
  const cpu = process.cpuUsage();
  const r = await loadManifests([dir]);
  const readMs = performance.now() - t;
  const used = process.cpuUsage(cpu);
  const errors = r.diagnostics.filter((d) => d.severity === 'error');
  if (errors.length > 0) throw new Error(`unexpected errors: ${JSON.stringify(errors.slice(0, 3))}`);
  const figures: Figures = {
    pods: size,
    fileMiB: (await stat(file)).size / 2 ** 20,
    readMs,
    cpuMs: (used.user + used.system) / 1000,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    workloads: r.cluster.workloads.length,
    modelPods: r.cluster.pods.length,
  };
  process.stdout.write(JSON.stringify(figures));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args[0] === '--child') {
    await child(Number(args[1]), args[2]);
    return;
  }
  const sizesArg = args.indexOf('--sizes');
  const sizes = sizesArg >= 0 ? args[sizesArg + 1].split(',').map(Number) : [10000, 100000];
  const rows: Figures[] = [];
  for (const size of sizes) {
    const dir = await mkdtemp(join(tmpdir(), 'weir-bench-read-'));
    try {
      await writeFile(join(dir, 'pods.json'), podList(size));
      await writeFile(join(dir, 'namespaces.json'), namespaceList());
      const out = execFileSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', String(size), dir], { encoding: 'utf8', maxBuffer: 1 << 20 });
      rows.push(JSON.parse(out) as Figures);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(`bench/read on ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`);
  console.log('| pods | file MiB | read ms (wall) | CPU ms | peak RSS MiB | workloads | model pods |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.pods} | ${f(r.fileMiB)} | ${f(r.readMs, 0)} | ${f(r.cpuMs, 0)} | ${f(r.peakRssMiB, 0)} | ${r.workloads} | ${r.modelPods} |`);
  const big = rows.find((r) => r.pods === 100000);
  if (big) console.log(`goal (issue 8): 100k pods in ≤ 5000 ms and ≤ 1024 MiB: ${big.readMs <= 5000 && big.peakRssMiB <= 1024 ? 'met' : 'NOT met'}`);
}

await main();
