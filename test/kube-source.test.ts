// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// The Kubernetes source against the test API server (real HTTPS, real list/watch streams):
// initial sync, events, and every failure mode users of watch clients report — a dropped
// stream, 410 Gone, a silent watch, an API server restart — with a ledger that refuses any
// event lost or applied twice and a final comparison with a fresh list.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Pod } from '../src/model/cluster.js';
import { KubeSource, type KubeSourceOptions } from '../src/source/kube/index.js';
import type { ClusterEvent } from '../src/source/types.js';
import type { KubeObject } from '../src/testing/apiserver/index.js';
import {
  adminNetworkPolicy,
  baselineAdminNetworkPolicy,
  endpointSlice,
  EventLedger,
  namespace,
  networkPolicy,
  node,
  pod,
  service,
  snapshotEntries,
  startApiServer,
  waitFor,
  type ApiFixture,
} from './helpers/kube.js';

const FAST = { watchdogMs: 60_000, backoffBaseMs: 50, backoffMaxMs: 400, watchTimeoutSeconds: [60, 60] as [number, number], pageSize: 3, absentRetryMs: 300 };

interface Running {
  source: KubeSource;
  ledger: EventLedger;
  errors: string[];
  synced: number;
}

async function startSource(api: ApiFixture, opts: Partial<KubeSourceOptions> = {}, wait = true): Promise<Running> {
  const source = new KubeSource({ auth: { kind: 'kubeconfig', path: api.kubeconfig }, timing: FAST, ...opts });
  const r: Running = { source, ledger: new EventLedger(), errors: [], synced: 0 };
  const started = source.start({
    onEvents: (b: readonly ClusterEvent[]) => r.ledger.apply(b),
    onSynced: () => r.synced++,
    onError: (e) => r.errors.push(e.message),
  });
  if (wait) await started;
  return r;
}

function seed(api: ApiFixture): void {
  const s = api.server;
  s.create(namespace('shop', { tier: 'app' }));
  s.create(namespace('data', { tier: 'app' }));
  s.create(node('node-a', '192.168.1.10'));
  s.create(node('node-b', '192.168.1.11'));
  s.create(pod('shop', 'cart-5d4f8-abcde', { labels: { app: 'cart', 'pod-template-hash': '5d4f8' }, node: 'node-a', ip: '10.1.0.5', owner: { kind: 'ReplicaSet', name: 'cart-5d4f8' } }));
  s.create(pod('shop', 'front-0', { labels: { app: 'front' }, node: 'node-b', ip: '10.1.1.7', owner: { kind: 'StatefulSet', name: 'front' }, ports: [{ name: 'http', containerPort: 8080 }, { containerPort: 9090 }] }));
  s.create(pod('data', 'db', { labels: { app: 'db' }, node: 'node-a', ip: '10.1.0.9' }));
  s.create(pod('data', 'migrate-x1', { labels: { app: 'migrate' }, node: 'node-b', phase: 'Succeeded', owner: { kind: 'Job', name: 'migrate' } }));
  s.create(service('shop', 'cart', { app: 'cart' }));
  s.create(endpointSlice('shop', 'cart-abc', 'cart', ['10.1.0.5']));
  s.create(networkPolicy('shop', 'cart-ingress', { app: 'cart' }));
  s.create(adminNetworkPolicy('deny-app', 20));
  s.create(baselineAdminNetworkPolicy());
}

/** The ledger (built from events only) equals the source's snapshot and a fresh source's snapshot. */
async function assertConverged(api: ApiFixture, r: Running): Promise<void> {
  assert.deepEqual(r.ledger.problems, [], 'no event lost or applied twice');
  const fresh = await startSource(api);
  try {
    const want = snapshotEntries(fresh.source.snapshot());
    const have = snapshotEntries(r.source.snapshot());
    assert.deepEqual([...have.keys()].sort(), [...want.keys()].sort());
    for (const [k, v] of want) assert.deepEqual(have.get(k), v, k);
    assert.deepEqual(r.ledger.keys(), [...want.keys()].sort(), 'the events add up to the fresh state');
    for (const [k, v] of want) assert.deepEqual(r.ledger.state.get(k), v, `ledger ${k}`);
  } finally {
    await fresh.source.stop();
  }
}

function setLabels(o: KubeObject, labels: Record<string, string>): KubeObject {
  return { ...o, metadata: { ...o.metadata, labels } };
}

describe('Kubernetes source against the test API server', () => {
  let api: ApiFixture;
  const running: Running[] = [];
  const start = async (opts: Partial<KubeSourceOptions> = {}, wait = true, kinds = 8) => {
    const before = api.server.openWatches;
    const r = await startSource(api, opts, wait);
    running.push(r);
    // Synced means listed; the watches open right after.
    if (wait) await waitFor('a watch per kind', () => api.server.openWatches >= before + kinds);
    return r;
  };

  beforeEach(async () => {
    api = await startApiServer({ bookmarkIntervalMs: 60_000 });
    seed(api);
  });
  afterEach(async () => {
    for (const r of running.splice(0)) await r.source.stop();
    await api.close();
  });

  it('syncs the initial state as one batch in kind order, then reports synced once', async () => {
    const r = await start();
    assert.equal(r.synced, 1);
    assert.equal(r.ledger.batches.length, 1, 'one initial batch');
    const kinds = r.ledger.batches[0].map((e) => e.kind);
    assert.deepEqual([...new Set(kinds)], ['Namespace', 'Node', 'Pod', 'Service', 'EndpointSlice', 'NetworkPolicy', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy']);
    assert.ok(r.ledger.batches[0].every((e) => e.type === 'added'));
    const c = r.source.snapshot().cluster;
    // Real pods, workloads from ownerReferences; the finished Job pod is not part of the model.
    assert.deepEqual(
      c.pods.map((p) => [p.namespace, p.name, p.workload, p.ip, p.node]),
      [
        ['data', 'db', 'data/db[Pod]', '10.1.0.9', 'node-a'],
        ['shop', 'cart-5d4f8-abcde', 'shop/cart[Deployment]', '10.1.0.5', 'node-a'],
        ['shop', 'front-0', 'shop/front[StatefulSet]', '10.1.1.7', 'node-b'],
      ],
    );
    assert.deepEqual(c.namespaces.map((n) => n.labels), [
      { tier: 'app', 'kubernetes.io/metadata.name': 'data' },
      { tier: 'app', 'kubernetes.io/metadata.name': 'shop' },
    ]);
    assert.deepEqual(c.nodes.map((n) => n.ip), ['192.168.1.10', '192.168.1.11']);
    // Defaulting is the loader's: policyTypes, protocol, mode.
    assert.deepEqual(c.networkPolicies[0].policyTypes, ['Ingress']);
    assert.equal(c.networkPolicies[0].mode, 'enforce');
    assert.equal(c.adminNetworkPolicies[0].priority, 20);
    assert.equal(c.baselineAdminNetworkPolicy?.name, 'default');
    const slices = r.source.snapshot().endpointSlices;
    assert.deepEqual(slices.map((s) => [s.service, s.endpoints[0].addresses, s.endpoints[0].ready, s.endpoints[0].pod]), [['cart', ['10.1.0.5'], true, 'shop/pod-10.1.0.5']]);
    // Lists were paged (page size 3 for 3+ pods).
    assert.ok(api.server.requests.some((q) => q.path === '/api/v1/pods' && q.query.continue), 'the pod list was read in pages');
    await assertConverged(api, r);
  });

  it('delivers add, update and delete events; changes outside the model make no event', async () => {
    const r = await start();
    const before = r.ledger.log.length;
    api.server.create(pod('shop', 'cart-5d4f8-fghij', { labels: { app: 'cart', 'pod-template-hash': '5d4f8' }, node: 'node-b', ip: '10.1.1.8', owner: { kind: 'ReplicaSet', name: 'cart-5d4f8' } }));
    const db = api.server.list('v1', 'Pod', 'data')[0];
    api.server.update(setLabels(db, { app: 'db', role: 'primary' }));
    // A status change weir does not read (conditions) is an API update but no model change.
    const db2 = api.server.list('v1', 'Pod', 'data')[0];
    api.server.update({ ...db2, status: { ...(db2.status as object), conditions: [{ type: 'Ready', status: 'True' }] } });
    api.server.delete('networking.k8s.io/v1', 'NetworkPolicy', 'shop', 'cart-ingress');
    await waitFor('three events', () => r.ledger.log.length >= before + 3);
    await new Promise((ok) => setTimeout(ok, 200));
    assert.deepEqual(r.ledger.log.slice(before), ['added Pod shop/cart-5d4f8-fghij', 'updated Pod data/db', 'deleted NetworkPolicy shop/cart-ingress']);
    const updated = r.ledger.batches.flat().find((e) => e.type === 'updated');
    assert.ok(updated?.type === 'updated' && updated.kind === 'Pod');
    assert.deepEqual((updated.old as Pod).labels, { app: 'db' });
    assert.deepEqual((updated.object as Pod).labels, { app: 'db', role: 'primary' });
    // A pod that finishes leaves the model (its IP may be reused).
    const job = api.server.create(pod('data', 'migrate-x2', { labels: { app: 'migrate' }, ip: '10.1.0.77' }));
    await waitFor('the job pod', () => r.ledger.state.has('Pod data/migrate-x2'));
    api.server.update({ ...job, status: { phase: 'Succeeded' } });
    await waitFor('the finished pod to go', () => !r.ledger.state.has('Pod data/migrate-x2'));
    await assertConverged(api, r);
  });

  it('reconnects after the stream is cut mid-watch and loses nothing', async () => {
    const r = await start();
    const watchesBefore = r.source.stats().find((s) => s.kind === 'Pod')?.watches ?? 0;
    assert.ok(api.server.dropWatches() >= 8, 'every kind had a watch open');
    api.server.create(pod('shop', 'late', { labels: { app: 'late' }, ip: '10.1.0.40' }));
    await waitFor('the pod created after the cut', () => r.ledger.state.has('Pod shop/late'));
    const podStats = r.source.stats().find((s) => s.kind === 'Pod');
    assert.ok((podStats?.watches ?? 0) > watchesBefore, 'the watch was opened again');
    assert.equal(podStats?.relistsGone, 0, 'resumed from its resourceVersion, no re-list needed');
    await assertConverged(api, r);
  });

  it('re-lists after 410 Gone and turns the missed changes into the right events', async () => {
    const r = await start();
    // The API server goes away; meanwhile objects change and the history is compacted, so the
    // source's resourceVersion is too old when it comes back.
    const port = new URL(api.server.url).port;
    await api.server.stop();
    api.server.create(pod('shop', 'while-down', { labels: { app: 'new' }, ip: '10.1.0.50' }));
    api.server.update(setLabels(api.server.list('v1', 'Pod', 'data')[0], { app: 'db', moved: 'yes' }));
    api.server.delete('v1', 'Pod', 'shop', 'front-0');
    api.server.create(namespace('ops'));
    api.server.store.compact();
    await api.server.start(Number(port));
    await waitFor('the missed changes', () => r.ledger.state.has('Pod shop/while-down') && !r.ledger.state.has('Pod shop/front-0') && r.ledger.state.has('Namespace ops'));
    await new Promise((ok) => setTimeout(ok, 200));
    const tail = r.ledger.log.slice(-4).sort();
    assert.deepEqual(tail, ['added Namespace ops', 'added Pod shop/while-down', 'deleted Pod shop/front-0', 'updated Pod data/db']);
    assert.ok((r.source.stats().find((s) => s.kind === 'Pod')?.relistsGone ?? 0) >= 1, 'the pod reflector re-listed after 410');
    // A 410 on an open watch (ERROR event in the stream) re-lists as well.
    api.server.forceGone();
    api.server.create(pod('shop', 'after-gone', { ip: '10.1.0.51' }));
    await waitFor('the pod after the forced 410', () => r.ledger.state.has('Pod shop/after-gone'));
    await assertConverged(api, r);
  });

  it('re-lists when a watch goes silent (watchdog) and catches up', async () => {
    const r = await start({ timing: { ...FAST, watchdogMs: 700 } });
    assert.ok(api.server.silenceWatches() >= 8);
    api.server.create(pod('shop', 'unseen', { ip: '10.1.0.60' }));
    api.server.delete('discovery.k8s.io/v1', 'EndpointSlice', 'shop', 'cart-abc');
    await waitFor('the watchdog to re-list', () => r.ledger.state.has('Pod shop/unseen') && !r.ledger.state.has('EndpointSlice shop/cart-abc'), 5000);
    const pods = r.source.stats().find((s) => s.kind === 'Pod');
    assert.ok((pods?.relistsWatchdog ?? 0) >= 1, 'the watchdog fired');
    assert.ok(r.errors.some((e) => /sent nothing for 700 ms; re-listing/.test(e)));
    await assertConverged(api, r);
  });

  it('takes every event of a slow watch, in order', async () => {
    const r = await start();
    api.server.setSlowWatches(40);
    const before = r.ledger.log.length;
    const names = Array.from({ length: 12 }, (_, i) => `slow-${String(i).padStart(2, '0')}`);
    for (const n of names) api.server.create(pod('data', n, { ip: `10.1.2.${names.indexOf(n) + 1}` }));
    api.server.delete('v1', 'Pod', 'data', 'slow-03');
    await waitFor('the slow events', () => r.ledger.log.length >= before + 13, 5000);
    assert.deepEqual(r.ledger.log.slice(before), [...names.map((n) => `added Pod data/${n}`), 'deleted Pod data/slow-03']);
    assert.ok(r.ledger.batches.length > 3, 'delivered as they trickled in, not at once');
    api.server.setSlowWatches(0);
    await assertConverged(api, r);
  });

  it('bookmarks advance the resourceVersion of a quiet kind', async () => {
    api.server.setBookmarkInterval(100);
    const r = await start();
    // Only namespaces change: the NetworkPolicy watch gets no event, only bookmarks.
    for (let i = 0; i < 5; i++) api.server.create(namespace(`quiet-${i}`));
    const target = String(api.server.store.resourceVersion);
    await waitFor('a bookmark at the newest resourceVersion', () => r.source.stats().find((s) => s.kind === 'NetworkPolicy')?.resourceVersion === target);
    const np = r.source.stats().find((s) => s.kind === 'NetworkPolicy');
    assert.ok((np?.bookmarks ?? 0) >= 1);
    // After a compaction, a reconnect from the bookmarked version needs no re-list.
    api.server.store.compact();
    api.server.dropWatches();
    api.server.create(networkPolicy('data', 'db-ingress', { app: 'db' }));
    await waitFor('the new policy', () => r.ledger.state.has('NetworkPolicy data/db-ingress'));
    assert.equal(r.source.stats().find((s) => s.kind === 'NetworkPolicy')?.relistsGone, 0);
    await assertConverged(api, r);
  });

  it('backs off while the API server is down (no reconnect storm) and resumes when it is back', async () => {
    const r = await start({ timing: { ...FAST, backoffBaseMs: 100, backoffMaxMs: 800 } });
    const port = new URL(api.server.url).port;
    await api.server.stop();
    await new Promise((ok) => setTimeout(ok, 2000));
    const failures = r.source.stats().map((s) => s.failures);
    // 100, 200, 400, 800, 800 ms … with jitter: at most ~8 attempts per kind in 2 s.
    assert.ok(failures.every((f) => f >= 1 && f <= 8), `failures per kind: ${failures.join(',')}`);
    api.server.create(pod('shop', 'back', { ip: '10.1.0.70' }));
    await api.server.start(Number(port));
    await waitFor('the pod created while down', () => r.ledger.state.has('Pod shop/back'), 5000);
    await assertConverged(api, r);
  });

  it('backs off when every watch is answered with 410 at once (no re-list storm)', async () => {
    const r = await start({ timing: { ...FAST, backoffBaseMs: 600, backoffMaxMs: 1200, pageSize: 500 } });
    const lists = () => r.source.stats().find((s) => s.kind === 'Pod')?.lists ?? 0;
    const before = lists();
    api.server.setGoneAlways(true);
    api.server.forceGone();
    await new Promise((ok) => setTimeout(ok, 2000));
    const relists = lists() - before;
    // At once, then after 300–600 ms, 600–1200 ms …: at most 4 in 2 s, not hundreds.
    assert.ok(relists >= 2 && relists <= 4, `re-lists in 2 s: ${relists}`);
    api.server.setGoneAlways(false);
    api.server.create(pod('shop', 'healed', { ip: '10.1.0.90' }));
    await waitFor('the pod after the server heals', () => r.ledger.state.has('Pod shop/healed'), 5000);
    await assertConverged(api, r);
  });

  it('survives random churn with every fault interleaved, ending equal to a fresh list', async () => {
    const r = await start({ timing: { ...FAST, watchdogMs: 600 } });
    let seed = 7;
    const rand = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 16) % n;
    };
    const ops = (n: number) => {
      for (let i = 0; i < n; i++) {
        const name = `churn-${rand(12)}`;
        const existing = api.server.list('v1', 'Pod', 'shop').find((p) => p.metadata.name === name);
        const op = rand(3);
        if (!existing) api.server.create(pod('shop', name, { labels: { v: String(rand(4)) }, ip: `10.2.0.${rand(250) + 1}` }));
        else if (op === 0) api.server.delete('v1', 'Pod', 'shop', name);
        else api.server.update(setLabels(existing, { v: String(rand(4)) }));
      }
    };
    const pause = (ms: number) => new Promise((ok) => setTimeout(ok, ms));
    for (let round = 0; round < 3; round++) {
      // Changes the watch sees, then a cut stream and changes made while it reconnects.
      ops(20);
      await pause(50);
      api.server.dropWatches();
      ops(20);
      await pause(150);
      // Changes a stalled watch never delivers, then a compaction: only the watchdog's re-list
      // (a diff against what is known, deletions included) can catch up.
      api.server.silenceWatches();
      ops(20);
      api.server.forceGone();
      ops(10);
      await pause(900);
      // A 410 on live watches in the middle of changes.
      ops(10);
      api.server.forceGone();
      ops(10);
      await pause(150);
    }
    const wantPods = api.server.list('v1', 'Pod').filter((p) => (p.status as { phase?: string }).phase !== 'Succeeded').length;
    await waitFor('convergence', () => r.source.snapshot().cluster.pods.length === wantPods, 8000);
    await new Promise((ok) => setTimeout(ok, 800));
    const churnEvents = r.ledger.log.filter((l) => / Pod shop\/churn-/.test(l)).length;
    assert.ok(churnEvents >= 10, `the churn made events (${churnEvents})`);
    assert.ok(r.ledger.log.some((l) => l.startsWith('deleted Pod shop/churn-')), 'and deletions');
    await assertConverged(api, r);
  });

  it('treats a kind the server does not serve (CRD absent) as empty and still syncs', async () => {
    await api.close();
    api = await startApiServer({ omitKinds: ['AdminNetworkPolicy', 'BaselineAdminNetworkPolicy'] });
    api.server.create(namespace('shop'));
    const r = await start({}, true, 6);
    assert.equal(r.synced, 1);
    assert.deepEqual(r.source.snapshot().cluster.adminNetworkPolicies, []);
    assert.ok(r.errors.some((e) => /AdminNetworkPolicy: the API server does not serve policy.networking.k8s.io\/v1alpha1/.test(e)));
    await new Promise((ok) => setTimeout(ok, 1000));
    assert.equal(r.errors.filter((e) => e.startsWith('AdminNetworkPolicy:')).length, 1, 'reported once, not on every retry');
    // The CRD is installed later: the source finds it and its objects.
    api.server.create(adminNetworkPolicy('late-anp', 3));
    api.server.setOmitKinds([]);
    await waitFor('the AdminNetworkPolicy once its CRD is served', () => r.ledger.state.has('AdminNetworkPolicy late-anp'), 5000);
    assert.equal(r.source.stats().find((s) => s.kind === 'AdminNetworkPolicy')?.absent, false);
  });

  it('reports an invalid policy by name and field, and keeps what the loader salvages (never drops it)', async () => {
    api.server.create(networkPolicy('shop', 'bad-mode', { app: 'cart' }, { 'weir.dev/mode': 'maybe' }));
    const r = await start();
    // Dropping a policy would fail open: the loader keeps what is certain and marks the rest.
    assert.ok(r.ledger.state.has('NetworkPolicy shop/bad-mode'));
    assert.ok(
      r.errors.some((e) => e.includes('kubernetes:NetworkPolicy shop/bad-mode') && e.includes('metadata.annotations') && e.includes('weir.dev/mode')),
      r.errors.join('\n'),
    );
    const bad = api.server.list('networking.k8s.io/v1', 'NetworkPolicy', 'shop').find((p) => p.metadata.name === 'bad-mode');
    assert.ok(bad);
    api.server.update({ ...bad, metadata: { ...bad.metadata, annotations: { 'weir.dev/mode': 'audit' } } });
    await waitFor('the fixed policy', () => (r.ledger.state.get('NetworkPolicy shop/bad-mode') as { mode?: string } | undefined)?.mode === 'audit');
    await assertConverged(api, r);
  });

  it('keeps only named ports of pods on other nodes when it serves one node', async () => {
    const r = await start({ node: 'node-a' });
    const pods = new Map(r.source.snapshot().cluster.pods.map((p) => [p.name, p]));
    assert.deepEqual(pods.get('front-0')?.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }], 'remote: named ports only');
    assert.deepEqual(pods.get('front-0')?.labels, { app: 'front' });
    assert.deepEqual(pods.get('db')?.ports, [{ name: 'http', port: 80, protocol: 'TCP' }]);
    assert.match(r.source.description, /node node-a/);
  });

  it('authenticates in-cluster with the service account token and CA', async () => {
    const { mkdirSync, writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const sa = join(api.dir, 'sa', 'var', 'run', 'secrets', 'kubernetes.io', 'serviceaccount');
    mkdirSync(sa, { recursive: true });
    writeFileSync(join(sa, 'token'), api.token);
    writeFileSync(join(sa, 'ca.crt'), api.ca);
    writeFileSync(join(sa, 'namespace'), 'weir');
    const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
    const url = new URL(api.server.url);
    process.env.KUBERNETES_SERVICE_HOST = url.hostname;
    process.env.KUBERNETES_SERVICE_PORT = url.port;
    try {
      const source = new KubeSource({ auth: { kind: 'in-cluster', root: join(api.dir, 'sa') }, timing: FAST });
      const ledger = new EventLedger();
      const r: Running = { source, ledger, errors: [], synced: 0 };
      running.push(r);
      await source.start({ onEvents: (b) => ledger.apply(b), onSynced: () => r.synced++, onError: (e) => r.errors.push(e.message) });
      assert.equal(r.synced, 1);
      assert.match(source.description, new RegExp(`kubernetes https://127\\.0\\.0\\.1:${url.port}`));
      assert.ok(ledger.state.has('Pod shop/front-0'));
    } finally {
      for (const [k, v] of [['KUBERNETES_SERVICE_HOST', saved.host], ['KUBERNETES_SERVICE_PORT', saved.port]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('does not sync with a wrong token: 401 is reported and retried with backoff', async () => {
    const { writeKubeconfig } = await import('../src/testing/apiserver/index.js');
    const { join } = await import('node:path');
    const bad = writeKubeconfig(join(api.dir, 'bad'), { server: api.server.url, token: 'nope', ca: api.ca });
    const r = await startSource({ ...api, kubeconfig: bad }, {}, false);
    running.push(r);
    await waitFor('an error', () => r.errors.length > 0);
    assert.equal(r.synced, 0);
    assert.ok(r.errors.some((e) => /401/.test(e)), r.errors[0]);
    assert.ok(!r.source.isSynced);
  });
});
