// Cluster sources (no root): the files source and the lab source emit the same events for the
// same input — at start and after a change — and events applied to an engine give the engine a
// fresh build gives.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { bumpGeneration, readObjects, writeDesired } from '../src/lab/desired.js';
import { planLab, readState, type LabState } from '../src/lab/index.js';
import { writeState } from '../src/lab/state.js';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster } from '../src/model/cluster.js';
import { evaluatePair, podEndpoint, PolicyEngine } from '../src/policy/index.js';
import {
  applyEventsToEngine,
  applyEventsToSnapshot,
  diffSnapshots,
  FilesSource,
  LabSource,
  snapshotEvents,
  snapshotOfCluster,
  type ClusterEvent,
  type ClusterSource,
} from '../src/source/index.js';

const POD_B = `---
apiVersion: v1
kind: Pod
metadata: { name: b, namespace: x, labels: { app: b } }
spec: { nodeName: node-1, containers: [{ name: c, image: i, ports: [{ name: http, containerPort: 8080 }] }] }
status: { podIP: 10.244.1.7 }
`;

// Two nodes as the lab builds them (names, underlay addresses, hostname label), pods bound to
// a node with an address in that node's pool, so the lab keeps them exactly as declared.
const BASE = `
apiVersion: v1
kind: Namespace
metadata: { name: x, labels: { team: red } }
---
apiVersion: v1
kind: Node
metadata: { name: node-0, labels: { zone: a, kubernetes.io/hostname: node-0 } }
status: { addresses: [{ type: InternalIP, address: 172.31.255.10 }] }
---
apiVersion: v1
kind: Node
metadata: { name: node-1, labels: { zone: b, kubernetes.io/hostname: node-1 } }
status: { addresses: [{ type: InternalIP, address: 172.31.255.11 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: a, namespace: x, labels: { app: a } }
spec: { nodeName: node-0, containers: [{ name: c, image: i, ports: [{ name: http, containerPort: 80 }] }] }
status: { podIP: 10.244.0.5 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: x }
spec: { selector: { app: b }, ports: [{ name: http, port: 80, targetPort: http }] }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: b-from-a, namespace: x }
spec:
  podSelector: { matchLabels: { app: b } }
  ingress: [{ from: [{ podSelector: { matchLabels: { app: a } } }] }]
---
apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: { name: zone-a-nodes }
spec:
  priority: 10
  subject: { namespaces: {} }
  egress: [{ name: deny-zone-a, action: Deny, to: [{ nodes: { matchLabels: { zone: a } } }] }]
`;

// Last, so that removing it moves no other object's line (a line is part of an object's source).
const MANIFESTS = `${BASE}${POD_B}`;

/** The same objects with node-1 relabelled, pod a relabelled, pod b gone, a second policy. */
const CHANGED = BASE.replace('zone: b,', 'zone: a,')
  .replace('labels: { app: a } }', 'labels: { app: a, v: "2" } }')
  .concat(`---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: deny-all, namespace: x }
spec: { podSelector: {} }
`);

async function scratch(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'weir-source-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function load(text: string): Cluster {
  const { cluster, diagnostics } = loadManifestText(text, 'fixture.yaml');
  assert.deepEqual(
    diagnostics.filter((d) => d.severity === 'error'),
    [],
  );
  return cluster;
}

/** Events without provenance (`source`: which file and line), which differs by construction. */
function comparable(events: unknown): unknown {
  return JSON.parse(JSON.stringify(events, (k, v: unknown) => (k === 'source' ? undefined : v)));
}

function collect(source: ClusterSource): { batches: ClusterEvent[][]; synced: () => boolean } {
  const batches: ClusterEvent[][] = [];
  let synced = false;
  void source.start({ onEvents: (e) => batches.push([...e]), onSynced: () => (synced = true) });
  return { batches, synced: () => synced };
}

/** A lab directory as `weir lab up` leaves it: the planned state and the desired folder. */
async function writeLab(dir: string, manifestFile: string, state: LabState | undefined): Promise<LabState> {
  const objects = await readObjects([manifestFile]);
  await writeDesired(dir, new Map(objects.map((o) => [o.file, o.text])));
  await bumpGeneration(dir);
  const cluster = load(MANIFESTS);
  const next = state ?? planLab(cluster, { dir, prefix: 'weir-tsrc-', nodes: 2 }).state;
  await writeState(next);
  return next;
}

describe('diffSnapshots', () => {
  it('delivers every object as added, then only what changed, keyed by kind and name', () => {
    const before = snapshotOfCluster(load(MANIFESTS));
    const initial = snapshotEvents(before);
    assert.ok(initial.every((e) => e.type === 'added'));
    assert.deepEqual(
      initial.map((e) => `${e.kind}`),
      ['Namespace', 'Node', 'Node', 'Pod', 'Pod', 'Service', 'EndpointSlice', 'NetworkPolicy', 'AdminNetworkPolicy'],
    );
    assert.deepEqual(diffSnapshots(before, snapshotOfCluster(load(MANIFESTS))), [], 'a re-read of the same files changes nothing');
    const after = snapshotOfCluster(load(CHANGED));
    const events = diffSnapshots(before, after);
    assert.deepEqual(
      events.map((e) => `${e.type} ${e.kind} ${e.object.name}`),
      [
        'updated Node node-1',
        'updated Pod a',
        'added NetworkPolicy deny-all',
        'deleted EndpointSlice ' + (before.endpointSlices[0]?.name ?? '?'),
        'deleted Pod b',
      ],
    );
    const node = events[0];
    assert.ok(node?.type === 'updated' && node.kind === 'Node');
    assert.equal(node.old.labels.zone, 'b');
    assert.equal(node.object.labels.zone, 'a');
    // A consumer keeping its own copy reaches the same snapshot.
    assert.deepEqual(comparable(snapshotEvents(applyEventsToSnapshot(before, events))), comparable(snapshotEvents(after)));
  });

  it('derives EndpointSlices from Services: named target ports resolved per pod', () => {
    const snap = snapshotOfCluster(load(MANIFESTS));
    assert.equal(snap.endpointSlices.length, 1);
    const slice = snap.endpointSlices[0];
    assert.ok(slice);
    assert.equal(slice.service, 'web');
    assert.deepEqual(slice.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
    assert.deepEqual(slice.endpoints, [{ addresses: ['10.244.1.7'], ready: true, serving: true, terminating: false, nodeName: 'node-1', pod: 'x/b' }]);
  });
});

describe('applyEventsToEngine', () => {
  it('an engine fed the events equals an engine built from the final cluster', () => {
    const first = load(MANIFESTS);
    const second = load(CHANGED);
    const engine = new PolicyEngine();
    const initial = applyEventsToEngine(engine, snapshotEvents(snapshotOfCluster(first)));
    assert.equal(initial.added.length, 2);
    const changes = applyEventsToEngine(engine, diffSnapshots(snapshotOfCluster(first), snapshotOfCluster(second)));
    assert.equal(changes.other, true);
    assert.deepEqual(
      changes.removed.map((p) => p.name),
      ['b'],
    );
    assert.ok(changes.removedIdentities.has('x/b'));
    assert.equal(changes.services, true);
    const fresh = new PolicyEngine(second);
    assert.deepEqual([...engine.policies.keys()].sort(), [...fresh.policies.keys()].sort());
    assert.deepEqual([...engine.cache.nodes.values()], [...fresh.cache.nodes.values()]);
    for (const [key, pod] of fresh.pods) {
      assert.deepEqual(engine.pods.get(key), pod);
      for (const [, other] of fresh.pods) {
        const want = evaluatePair(fresh, podEndpoint(fresh, pod), podEndpoint(fresh, other), 'full');
        const got = evaluatePair(engine, podEndpoint(engine, pod), podEndpoint(engine, other), 'full');
        assert.deepEqual(got.allowed, want.allowed, `${key} -> ${other.name}`);
      }
    }
  });

  it('pods of an existing identity coming and going are reported as pod changes only', () => {
    const engine = new PolicyEngine();
    const base = snapshotOfCluster(load(MANIFESTS));
    applyEventsToEngine(engine, snapshotEvents(base));
    const a = base.cluster.pods.find((p) => p.name === 'a');
    assert.ok(a);
    const more = applyEventsToSnapshot(base, [{ type: 'added', kind: 'Pod', object: { ...a, name: 'a2', ip: '10.244.0.6' } }]);
    const changes = applyEventsToEngine(engine, diffSnapshots(base, { ...more, endpointSlices: base.endpointSlices }));
    assert.equal(changes.other, false);
    assert.deepEqual(
      changes.added.map((p) => p.name),
      ['a2'],
    );
  });
});

describe('files and lab sources', () => {
  it('emit the same events for the same input, at start and after a change', async (t) => {
    const dir = await scratch(t);
    const file = join(dir, 'manifests.yaml');
    await writeFile(file, MANIFESTS);
    const labDir = join(dir, 'lab');
    const state = await writeLab(labDir, file, undefined);

    const files = new FilesSource([file]);
    const lab = new LabSource({ dir: labDir });
    const f = collect(files);
    const l = collect(lab);
    t.after(async () => {
      await files.stop();
      await lab.stop();
    });
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(f.synced() && l.synced(), 'both sources report synced after the first batch');
    assert.equal(f.batches.length, 1);
    assert.equal(l.batches.length, 1);
    assert.equal(f.batches[0]?.length, 9);
    assert.deepEqual(comparable(l.batches[0] ?? []), comparable(f.batches[0] ?? []));
    assert.equal(lab.generation(), 1);

    // The change: in the files; in the lab, through the desired folder and the state, as
    // `lab apply` writes them (pod b gone, pod a relabelled, node labels recorded).
    await writeFile(file, CHANGED);
    const fileEvents = await files.refresh();
    await writeLab(labDir, file, {
      ...state,
      nodes: state.nodes.map((n) => (n.name === 'node-1' ? { ...n, labels: { ...n.labels, zone: 'a' } } : n)),
      pods: state.pods.filter((p) => p.name !== 'b').map((p) => (p.name === 'a' ? { ...p, labels: { app: 'a', v: '2' } } : p)),
    });
    const labRead = await lab.refresh();
    assert.equal(fileEvents.length, 5);
    assert.deepEqual(comparable(labRead.events), comparable(fileEvents));
    assert.equal(labRead.generation, 2);
    assert.deepEqual(comparable(lab.snapshot().cluster.nodes), comparable(files.snapshot().cluster.nodes));
  });

  it('a Node relabelled in the desired manifests alone reaches the lab source', async (t) => {
    const dir = await scratch(t);
    const file = join(dir, 'manifests.yaml');
    await writeFile(file, MANIFESTS);
    const labDir = join(dir, 'lab');
    const state = await writeLab(labDir, file, undefined);
    const lab = new LabSource({ dir: labDir });
    await lab.start({ onEvents: () => undefined });
    t.after(() => lab.stop());
    await writeFile(file, MANIFESTS.replace('zone: b,', 'zone: a,'));
    await writeLab(labDir, file, state); // the state's node labels are still the old ones
    const read = await lab.refresh();
    assert.deepEqual(
      read.events.map((e) => `${e.type} ${e.kind} ${e.object.name}`),
      ['updated Node node-1'],
    );
    const node = lab.snapshot().cluster.nodes.find((n) => n.name === 'node-1');
    assert.deepEqual(node?.labels, { zone: 'a', 'kubernetes.io/hostname': 'node-1' });
    assert.equal((await readState(labDir))?.nodes[1]?.labels.zone, 'b');
  });

  it('the files source expands a Deployment into pods and watches the files', async (t) => {
    const dir = await scratch(t);
    const file = join(dir, 'deploy.yaml');
    const deployment = (replicas: number) => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: x }
spec:
  replicas: ${replicas}
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: c, image: i, ports: [{ containerPort: 80 }] }] }
`;
    await writeFile(file, deployment(2));
    const source = new FilesSource([dir], { watch: true, pollMs: 50 });
    const batches: ClusterEvent[][] = [];
    let changed: () => void = () => undefined;
    const next = new Promise<void>((r) => (changed = r));
    await source.start({
      onEvents: (e) => {
        batches.push([...e]);
        if (batches.length === 2) changed();
      },
    });
    t.after(() => source.stop());
    assert.deepEqual(
      batches[0]?.filter((e) => e.kind === 'Pod').map((e) => e.object.name),
      ['web-0', 'web-1'],
    );
    await writeFile(file, deployment(3));
    await Promise.race([next, new Promise((_, fail) => setTimeout(() => fail(new Error('no events after the file changed')), 5000))]);
    assert.deepEqual(
      batches[1]?.map((e) => `${e.type} ${e.kind} ${e.object.name}`),
      ['added Pod web-2'],
    );
  });
});
