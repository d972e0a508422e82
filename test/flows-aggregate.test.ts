import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Aggregator, aggregateEdges, aggregatePolicies, groupOf } from '../src/flows/aggregate.js';
import { FilterError, matchesFilter, parseDuration, parseFlowFilter } from '../src/flows/filter.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const c = syntheticCluster(3, 3, 2);
const pod = (ns: string, wl: string, i = 0) => {
  const p = c.pods.find((x) => x.namespace === ns && x.name === `${wl}-${i}`);
  assert.ok(p);
  return p;
};

test('groupOf: workload, namespace, identity; external by CIDR', () => {
  const r = podRecord(pod('x', 'a'), pod('y', 'b'));
  assert.equal(groupOf(r.src, 'workload'), 'x/a[Deployment]');
  assert.equal(groupOf(r.src, 'namespace'), 'x');
  assert.equal(groupOf(r.dst, 'identity'), 'y:pod=b');
  assert.equal(groupOf({ ip: '1.1.1.1', external: true, cidr: '1.1.1.0/24' }, 'workload'), 'external:1.1.1.0/24');
  assert.equal(groupOf({ ip: '1.1.1.1', external: true }, 'namespace'), 'external:world');
});

test('aggregateEdges: pods of one workload merge into one edge; start/end count a connection once', () => {
  const t = 1_000_000;
  const recs = [
    podRecord(pod('x', 'a', 0), pod('y', 'b', 0), { time: t }),
    podRecord(pod('x', 'a', 1), pod('y', 'b', 1), { time: t + 5 }),
    { ...podRecord(pod('x', 'a'), pod('y', 'b'), { time: t + 6 }), event: 'start' as const, bytes: 0, packets: 0 },
    { ...podRecord(pod('x', 'a'), pod('y', 'b'), { time: t + 9 }), event: 'end' as const, bytes: 100, packets: 2 },
    podRecord(pod('x', 'a'), pod('y', 'c'), { verdict: 'DROPPED', time: t + 7 }),
  ];
  const edges = aggregateEdges(recs, 'workload');
  assert.equal(edges.length, 2);
  const ab = edges.find((e) => e.dst === 'y/b[Deployment]');
  assert.deepEqual(ab, { src: 'x/a[Deployment]', dst: 'y/b[Deployment]', flows: 3, bytes: 3100, packets: 22, forwarded: 3, dropped: 0, audit: 0, lastSeen: t + 9 });
  const ns = aggregateEdges(recs, 'namespace');
  assert.equal(ns.length, 1);
  assert.equal(ns[0]?.flows, 4);
  assert.equal(ns[0]?.dropped, 1);
  const pol = aggregatePolicies(recs);
  assert.equal(pol.get('NetworkPolicy y/default-deny')?.dropped, 1);
  assert.equal(pol.get('default')?.hits, 3);
});

test('Aggregator: sliding windows, top talkers/denied, bounded by horizon', () => {
  let now = 10_000_000;
  const agg = new Aggregator({ now: () => now, bucketMs: 10_000, horizonMs: 3_600_000 });
  agg.add([podRecord(pod('x', 'a'), pod('y', 'b'), { time: now - 4 * 60_000, bytes: 5000 })]);
  agg.add([podRecord(pod('x', 'a'), pod('y', 'c'), { time: now - 10_000, verdict: 'DROPPED' })]);
  agg.add([podRecord(pod('z', 'a'), pod('y', 'c'), { time: now, verdict: 'DROPPED' }), podRecord(pod('z', 'a'), pod('y', 'c'), { time: now, verdict: 'DROPPED' })]);
  assert.equal(agg.edges('workload', 60_000).length, 2);
  assert.equal(agg.edges('workload', 300_000).length, 3);
  assert.equal(agg.topTalkers('workload', 300_000, 1)[0]?.bytes, 5000);
  const denied = agg.topDenied('namespace', 300_000);
  assert.deepEqual(denied.map((e) => [e.src, e.dst, e.dropped]), [['z', 'y', 2], ['x', 'y', 1]]);
  // Records older than the horizon are ignored, and old buckets are pruned as time passes.
  agg.add([podRecord(pod('x', 'a'), pod('y', 'b'), { time: now - 2 * 3_600_000 })]);
  assert.equal(agg.edges('workload', 3_600_000).length, 3);
  now += 2 * 3_600_000;
  agg.add([]);
  assert.equal(agg.bucketCount, 0);
  assert.equal(agg.policyCounters().find((p) => p.policy === 'NetworkPolicy y/default-deny')?.dropped, 3);
});

test('Aggregator: distinct edges per bucket are capped (overflow edge)', () => {
  const now = 5_000_000;
  const agg = new Aggregator({ now: () => now, maxKeysPerBucket: 3 });
  const recs = c.pods.slice(0, 6).map((p, i) => podRecord(p, c.pods[(i + 7) % c.pods.length] ?? p, { time: now }));
  agg.add(recs);
  const edges = agg.edges('workload', 60_000);
  assert.ok(edges.some((e) => e.src === 'other'));
  assert.equal(edges.reduce((s, e) => s + e.flows, 0), 6);
});

test('filters: parse Hubble-like query, errors name the field', () => {
  const now = Date.parse('2025-01-01T00:10:00Z');
  const f = parseFlowFilter({ from_pod: 'x/a-0', to_namespace: 'y', verdict: 'dropped', port: '80', protocol: 'tcp', since: '5m', limit: '20' }, now);
  assert.deepEqual(f, { limit: 20, fromNamespace: 'x', fromPod: 'a-0', toNamespace: 'y', verdict: 'DROPPED', port: 80, protocol: 'TCP', since: now - 300_000 });
  assert.equal(parseFlowFilter({ since: '2025-01-01T00:00:00Z' }).since, Date.parse('2025-01-01T00:00:00Z'));
  assert.equal(parseDuration('1h30m'), 5_400_000);
  const bad = (q: Record<string, string>, field: string) =>
    assert.throws(() => parseFlowFilter(q), (e: unknown) => e instanceof FilterError && e.field === field && e.message.startsWith(`${field}:`));
  bad({ verdict: 'MAYBE' }, 'verdict');
  bad({ port: '70000' }, 'port');
  bad({ port: 'http' }, 'port');
  bad({ since: 'yesterday' }, 'since');
  bad({ limit: '0' }, 'limit');
  bad({ protocol: 'quic' }, 'protocol');
  bad({ from_pod: 'x/' }, 'from_pod');
  bad({ colour: 'red' }, 'colour');
  bad({ since: '1m', until: '5m' }, 'until');
});

test('matchesFilter agrees with the filter semantics, including external groups', () => {
  const r = podRecord(pod('x', 'a'), pod('y', 'b'), { verdict: 'DROPPED', dstPort: 81 });
  assert.ok(matchesFilter(r, parseFlowFilter({ from_namespace: 'x', verdict: 'DROPPED', port: '81' })));
  assert.ok(!matchesFilter(r, parseFlowFilter({ to_pod: 'y/c-0' })));
  const ext = { ...r, dst: { ip: '8.8.8.8', external: true } };
  assert.ok(matchesFilter(ext, parseFlowFilter({ to_workload: 'external:world' })));
  assert.ok(!matchesFilter(r, parseFlowFilter({ to_workload: 'external:world' })));
});

test('edges keep the part of their flows that went through a Service (via), per Service address, in batches and windows', () => {
  const now = 5_000_000;
  const svc = { ip: '10.96.0.80', port: 80, name: 'y/b' };
  const recs = [
    { ...podRecord(pod('x', 'a', 0), pod('y', 'b', 0), { time: now - 1000 }), service: svc },
    { ...podRecord(pod('x', 'a', 1), pod('y', 'b', 1), { time: now - 900, verdict: 'DROPPED' }), service: svc },
    { ...podRecord(pod('x', 'a', 0), pod('y', 'b', 0), { time: now - 800 }), service: { ip: '10.0.0.1', port: 30080 } },
    podRecord(pod('x', 'a', 0), pod('y', 'b', 0), { time: now - 700 }),
    podRecord(pod('x', 'a', 0), pod('y', 'c', 0), { time: now - 700 }),
  ];
  const batch = aggregateEdges(recs, 'workload');
  const ab = batch.find((e) => e.dst === 'y/b[Deployment]');
  assert.equal(ab?.flows, 4);
  assert.deepEqual(ab?.via, {
    'y/b|10.96.0.80|80': { ip: '10.96.0.80', port: 80, name: 'y/b', flows: 2, bytes: 1560, forwarded: 1, dropped: 1, audit: 0 },
    '|10.0.0.1|30080': { ip: '10.0.0.1', port: 30080, flows: 1, bytes: 1500, forwarded: 1, dropped: 0, audit: 0 },
  });
  assert.equal(batch.find((e) => e.dst === 'y/c[Deployment]')?.via, undefined, 'no via without a Service');

  // Over buckets: summed, and asking twice gives the same (the window's sum never aliases a bucket).
  const agg = new Aggregator({ bucketMs: 500, now: () => now });
  agg.add(recs);
  for (let i = 0; i < 2; i++) {
    const e = agg.edges('namespace', 60_000).find((x) => x.src === 'x' && x.dst === 'y');
    assert.equal(e?.via?.['y/b|10.96.0.80|80']?.flows, 2);
    assert.equal(e?.via?.['y/b|10.96.0.80|80']?.dropped, 1);
    assert.equal(e?.via?.['|10.0.0.1|30080']?.flows, 1);
  }
});
