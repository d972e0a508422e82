// suite: unit (no root, no processes)
// The ingest fast path (src/flows/ship-validate.ts) against the zod schemas it stands in for:
// on valid records of every shape and on every field broken in many ways, whatever the fast
// path accepts the schema accepts, with the same result; and a whole batch is accepted or
// refused exactly as `shipBatchSchema` does, with the broken field named.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { flowRecordSchema, type FlowRecord } from '../src/flows/record.js';
import { shipBatchSchema } from '../src/flows/ship-protocol.js';
import { fastFlowRecord, parseShipBatch } from '../src/flows/ship-validate.js';

const base: FlowRecord = {
  time: 1_700_000_000_000,
  node: 'node-1',
  src: { ip: '10.0.0.1', namespace: 'x', pod: 'a', workload: 'x/a[Deployment]', identity: 'x:pod=a', identityId: 7 },
  dst: { ip: '10.0.0.2', namespace: 'y', pod: 'b', workload: 'y/b[Deployment]', identity: 'y:pod=b' },
  srcPort: 40000,
  dstPort: 80,
  protocol: 'TCP',
  verdict: 'FORWARDED',
  policy: 'NetworkPolicy y/allow',
  rule: 'ingress[0]',
  tier: 'NetworkPolicy',
  direction: 'ingress',
  bytes: 1500,
  packets: 10,
  durationMs: 12.5,
  event: 'sample',
  service: { ip: '10.96.0.10', port: 80, name: 'y/web' },
  count: 40,
};

/** Values of every kind a broken agent (or an attacker) could put in a field. */
const WEIRD: unknown[] = [undefined, null, 0, -1, 1.5, 65535, 65536, -0, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, '', 'x', 'TCP', 'ingress', 'sample', 'DROPPED', 'default', true, false, {}, [], [1], { ip: '1.2.3.4' }, { ip: '' }, { ip: 'a', port: 80 }];

function variants(): unknown[] {
  const out: unknown[] = [base];
  // Every optional field absent, one at a time and all together.
  const optional = ['direction', 'event', 'service', 'count'] as const;
  for (const k of optional) {
    const { [k]: _gone, ...rest } = base;
    out.push(rest);
  }
  out.push({ time: 0, node: '', src: { ip: 'a' }, dst: { ip: 'b', external: true, cidr: '0.0.0.0/0' }, srcPort: 0, dstPort: 65535, protocol: 'OTHER', verdict: 'AUDIT', policy: '', rule: '', tier: 'default', bytes: 0, packets: 0, durationMs: 0 });
  // Unknown keys, at the top and inside: stripped by the schema.
  out.push({ ...base, extra: 1, src: { ...base.src, extra: 'x' }, service: { ip: '1.1.1.1', port: 1, extra: true } });
  // Every field of the record, of an endpoint and of the service, replaced by every weird value.
  for (const k of Object.keys(base) as (keyof FlowRecord)[]) for (const w of WEIRD) out.push({ ...base, [k]: w });
  for (const side of ['src', 'dst'] as const) {
    for (const k of ['ip', 'namespace', 'pod', 'workload', 'identity', 'identityId', 'external', 'cidr']) for (const w of WEIRD) out.push({ ...base, [side]: { ...base[side], [k]: w } });
  }
  for (const k of ['ip', 'port', 'name']) for (const w of WEIRD) out.push({ ...base, service: { ...base.service, [k]: w } });
  // Not records at all.
  out.push(...WEIRD, Object.create(null), Object.assign(Object.create(null), base), JSON.parse('{"__proto__": {"polluted": true}}'));
  return out;
}

test('the fast record check accepts only what the schema accepts, and returns what it returns', () => {
  let fastAccepted = 0;
  for (const v of variants()) {
    const fast = fastFlowRecord(v);
    const z = flowRecordSchema.safeParse(v);
    // What an agent can send is JSON: every such record the schema accepts, the fast path must
    // vouch for itself (else it would not carry the load). Keys set to `undefined` exist only in
    // JavaScript; the fast path leaves those to the schema.
    const json = v === undefined ? undefined : (JSON.parse(JSON.stringify(v)) as unknown);
    let sameAsJson = true;
    try {
      assert.deepEqual(json, v);
    } catch {
      sameAsJson = false;
    }
    if (z.success && sameAsJson && typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) assert.ok(fast, `fast path refused a valid record: ${JSON.stringify(v)}`);
    if (fast === undefined) continue;
    fastAccepted++;
    assert.ok(z.success, `fast path accepted what the schema refuses: ${JSON.stringify(v)}`);
    assert.deepEqual(fast, z.data);
  }
  assert.ok(fastAccepted > 50);
});

const report = {
  node: 'node-1',
  version: 'test',
  ship: { bufferedBatches: 0, bufferedBytes: 0, bufferLimitBytes: 1, lostBatches: 0, lostFlows: 0, sentBatches: 0, failedAttempts: 0, observedFlows: 0, sampledRecords: 0 },
};

test('a batch is accepted or refused exactly as shipBatchSchema does, naming the field', () => {
  const good = { agentId: 'agent-12345', seq: 3, firstSeq: 2, flows: 41, records: [base, { ...base, count: undefined, extra: 1 }], report };
  const bodies: unknown[] = [
    good,
    { ...good, records: undefined },
    { agentId: 'agent-12345', report },
    { ...good, records: 'many' },
    { ...good, records: [base, { ...base, dstPort: 70000 }] },
    { ...good, records: [base, { ...base, src: { ...base.src, ip: '' } }] },
    { ...good, firstSeq: 9 },
    { ...good, agentId: 'bad id' },
    { ...good, report: { ...report, node: '' } },
    { ...good, records: [null] },
    null,
    [],
    'text',
  ];
  for (const body of bodies) {
    const mine = parseShipBatch(body);
    const z = shipBatchSchema.safeParse(body);
    assert.equal(mine.ok, z.success, JSON.stringify(body));
    if (mine.ok && z.success) assert.deepEqual(mine.batch, z.data);
  }
  const bad = parseShipBatch({ ...good, records: [base, { ...base, dstPort: 70000 }] });
  assert.equal(bad.ok, false);
  if (!bad.ok) assert.match(bad.message, /^field records\.1\.dstPort: /);
  const badFirst = parseShipBatch({ ...good, firstSeq: 9 });
  if (!badFirst.ok) assert.match(badFirst.message, /^field firstSeq: /);
  const tooMany = parseShipBatch({ ...good, records: new Array(50_001).fill(base) });
  assert.equal(tooMany.ok, false);
  if (!tooMany.ok) assert.match(tooMany.message, /^field records: /);
});
