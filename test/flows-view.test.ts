// The agents' flow view (src/flows/view.ts): pods by address from source events, Services by
// virtual address (their names on records that went through them), the engine's attribution of
// accepted connections; and every change reaching the next record. No root: pure data.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Enricher } from '../src/flows/enrich.js';
import type { FlowRecord } from '../src/flows/record.js';
import { FlowView } from '../src/flows/view.js';
import { loadManifestText } from '../src/load/index.js';
import type { Pod } from '../src/model/cluster.js';
import { PolicyEngine } from '../src/policy/engine.js';
import { snapshotEvents } from '../src/source/diff.js';
import { applyEventsToEngine } from '../src/source/engine.js';
import { snapshotOfCluster } from '../src/source/files.js';
import type { ClusterEvent } from '../src/source/types.js';

const MANIFESTS = `
apiVersion: v1
kind: Namespace
metadata: { name: shop, labels: { team: shop } }
---
apiVersion: v1
kind: Node
metadata: { name: node-1 }
status: { addresses: [{ type: InternalIP, address: 192.168.50.11 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: web-1, namespace: shop, labels: { app: web } }
spec: { nodeName: node-1, containers: [{ name: c, image: i, ports: [{ containerPort: 80 }] }] }
status: { podIP: 10.244.1.5 }
---
apiVersion: v1
kind: Pod
metadata: { name: db-1, namespace: shop, labels: { app: db } }
spec: { nodeName: node-2, containers: [{ name: c, image: i, ports: [{ containerPort: 5432 }] }] }
status: { podIP: 10.244.2.7 }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec: { clusterIP: 10.96.0.40, selector: { app: db }, ports: [{ port: 5432, targetPort: 5432 }] }
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: db-from-web, namespace: shop }
spec:
  podSelector: { matchLabels: { app: db } }
  ingress: [{ from: [{ podSelector: { matchLabels: { app: web } } }], ports: [{ port: 5432 }] }]
`;

function setup(): { engine: PolicyEngine; view: FlowView; events: ClusterEvent[] } {
  const loaded = loadManifestText(MANIFESTS, 'view.yaml');
  assert.deepEqual(
    loaded.diagnostics.filter((d) => d.severity === 'error'),
    [],
  );
  const events = snapshotEvents(snapshotOfCluster(loaded.cluster));
  const engine = new PolicyEngine();
  applyEventsToEngine(engine, events);
  const view = new FlowView(engine);
  view.apply(events);
  return { engine, view, events };
}

function conntrackRecord(src: string, dst: string, port: number, service?: { ip: string; port: number }): FlowRecord {
  return {
    time: Date.now(),
    node: 'node-1',
    src: { ip: src },
    dst: { ip: dst },
    srcPort: 40000,
    dstPort: port,
    protocol: 'TCP',
    verdict: 'FORWARDED',
    policy: 'default',
    rule: 'default-allow',
    tier: 'default',
    bytes: 100,
    packets: 2,
    durationMs: 5,
    event: 'end',
    ...(service ? { service } : {}),
  };
}

test('pods of every node by address, with workload, identity and the engine identity id', () => {
  const { view, engine } = setup();
  const db = view.pod('10.244.2.7');
  assert.equal(db?.namespace, 'shop');
  assert.equal(db?.name, 'db-1');
  assert.equal(db?.identity, 'shop:app=db');
  assert.equal(db?.identityId, engine.identityOfPod('shop/db-1')?.id);
  assert.ok(db?.identityId !== undefined);
  assert.equal(view.pod('10.244.9.9'), undefined);
});

test('a record through a Service carries the Service name (ClusterIP from the API)', () => {
  const { view } = setup();
  const enricher = new Enricher({ lookup: (ip) => view.pod(ip), serviceLookup: (ip, port) => view.service(ip, port) });
  const r = enricher.enrich(conntrackRecord('10.244.1.5', '10.244.2.7', 5432, { ip: '10.96.0.40', port: 5432 }));
  assert.equal(r.service?.name, 'shop/db');
  assert.equal(r.dst.workload, 'shop/db-1[Pod]');
  assert.equal(view.service('10.96.0.40', 80), undefined);
});

test('the attribution names the deciding policy; the owner node keeps the record', () => {
  const { view } = setup();
  const kept = view.attribution().conntrack(conntrackRecord('10.244.1.5', '10.244.2.7', 5432), 'node-1');
  assert.equal(kept?.policy, 'NetworkPolicy shop/db-from-web');
  assert.equal(kept?.tier, 'NetworkPolicy');
  assert.equal(kept?.direction, 'ingress');
  // The same connection seen on the destination's node belongs to the source's node.
  assert.equal(view.attribution().conntrack(conntrackRecord('10.244.1.5', '10.244.2.7', 5432), 'node-2'), undefined);
});

test('events move the view: a pod deleted, its address reused, a Service removed', () => {
  const { view, engine, events } = setup();
  const web = events.find((e) => e.kind === 'Pod' && e.object.name === 'web-1')?.object as Pod;
  const v0 = view.version;
  const gone: ClusterEvent[] = [{ type: 'deleted', kind: 'Pod', object: web }];
  applyEventsToEngine(engine, gone);
  view.apply(gone);
  assert.ok(view.version > v0, 'a change bumps the version (the enricher empties its cache on it)');
  assert.equal(view.pod('10.244.1.5'), undefined);
  const reused: Pod = { ...web, name: 'api-1', labels: { app: 'api' }, workload: 'shop/api-1[Pod]' };
  const added: ClusterEvent[] = [{ type: 'added', kind: 'Pod', object: reused }];
  applyEventsToEngine(engine, added);
  view.apply(added);
  assert.equal(view.pod('10.244.1.5')?.name, 'api-1');
  // api is not allowed to db: the engine now says so for that address (the drop is db's
  // node's to report, so node-1 discards its conntrack half).
  const before = view.attributionStats().droppedElsewhere;
  assert.equal(view.attribution().conntrack(conntrackRecord('10.244.1.5', '10.244.2.7', 5432), 'node-1'), undefined);
  assert.equal(view.attributionStats().droppedElsewhere, before + 1);
  const svc = events.find((e) => e.kind === 'Service')?.object;
  assert.ok(svc && 'clusterIP' in svc);
  view.apply([{ type: 'deleted', kind: 'Service', object: svc }]);
  assert.equal(view.service('10.96.0.40', 5432), undefined);
});
