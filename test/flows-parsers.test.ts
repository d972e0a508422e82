import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConntrackFlowParser, parseConntrackLine } from '../src/flows/conntrack.js';
import { Enricher, identityOf } from '../src/flows/enrich.js';
import { cidrContains, parseCidrOrAddress as parseCidr } from '../src/policy/ip.js';
import { CounterTracker, DeniedSetTracker, parseDeniedSet, parseHitCounters } from '../src/flows/nftjson.js';
import { parseReasons, ReasonsError } from '../src/flows/reasons.js';
import { flowRecordSchema } from '../src/flows/record.js';
import { SAMPLE_REASONS, deniedSetJson, syntheticCluster } from '../src/flows/synthetic.js';

// Captured from conntrack-tools 1.4.7 in a network namespace (nf_conntrack_acct=1).
const CT = [
  '[1795471246.830960]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.99.0.1 dst=10.99.0.2 sport=37538 dport=80 [UNREPLIED] src=10.99.0.2 dst=10.99.0.1 sport=80 dport=37538 id=1754701641',
  '[1795471248.051212]\t    [NEW] ipv4     2 udp      17 30 src=10.99.0.1 dst=10.99.0.2 sport=48773 dport=53 [UNREPLIED] src=10.99.0.2 dst=10.99.0.1 sport=53 dport=48773 id=2970096082',
  '[1795471248.060929]\t[DESTROY] ipv4     2 tcp      6 118 TIME_WAIT src=10.99.0.1 dst=10.99.0.2 sport=37538 dport=80 packets=6 bytes=433 src=10.99.0.2 dst=10.99.0.1 sport=80 dport=37538 packets=6 bytes=1594 [ASSURED] id=1754701641 [USERSPACE] portid=6606',
  '[1795471248.062176]\t[DESTROY] ipv4     2 udp      17 29 src=10.99.0.1 dst=10.99.0.2 sport=48773 dport=53 packets=1 bytes=30 [UNREPLIED] src=10.99.0.2 dst=10.99.0.1 sport=53 dport=48773 packets=0 bytes=0 id=2970096082 [USERSPACE] portid=6606',
  'conntrack v1.4.7 (conntrack-tools): 4 flow events have been shown.',
];
// Captured from nftables 1.0.6: `nft -j list set inet weir denied` / `nft -j list set inet weir hits`.
const SET_JSON =
  '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "denied", "table": "weir", "type": ["ipv4_addr", "ipv4_addr", "inet_proto", "inet_service", "mark"], "handle": 3, "size": 65535, "flags": ["timeout"], "timeout": 300, "elem": [{"elem": {"val": {"concat": ["10.99.0.1", "10.99.0.2", "tcp", 81, 3]}, "expires": 293, "counter": {"packets": 1, "bytes": 60}}}], "stmt": [{"counter": null}]}}]}';
const HITS_JSON =
  '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"set": {"family": "inet", "name": "hits", "table": "weir", "type": "mark", "handle": 2, "size": 1048576, "elem": [{"elem": {"val": 17, "counter": {"packets": 1, "bytes": 60}}}, {"elem": {"val": 18, "counter": {"packets": 2, "bytes": 120}}}], "stmt": [{"counter": null}]}}]}';

const reasons = parseReasons(SAMPLE_REASONS);

test('conntrack line: tuples, accounting, timestamp, id', () => {
  const ev = parseConntrackLine(CT[2] as string);
  assert.ok(ev);
  assert.equal(ev.type, 'DESTROY');
  assert.equal(ev.protocol, 'tcp');
  assert.equal(ev.time, 1795471248060);
  assert.deepEqual(ev.orig, { src: '10.99.0.1', dst: '10.99.0.2', sport: 37538, dport: 80, packets: 6, bytes: 433 });
  assert.deepEqual(ev.reply, { src: '10.99.0.2', dst: '10.99.0.1', sport: 80, dport: 37538, packets: 6, bytes: 1594 });
  assert.equal(ev.id, 1754701641);
  assert.equal(parseConntrackLine(CT[4] as string), undefined);
  assert.equal(parseConntrackLine(''), undefined);
});

test('conntrack ICMP: the conntrack id is the last id=, not the echo id', () => {
  const ev = parseConntrackLine('[1795471248.000001]\t    [NEW] ipv4     2 icmp     1 30 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=77 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=77 mark=3 id=999');
  assert.ok(ev);
  assert.equal(ev.id, 999);
  assert.equal(ev.mark, 3);
  assert.equal(ev.protocol, 'icmp');
});

test('conntrack parser: NEW starts a flow, DESTROY ends it with totals and duration', () => {
  const p = new ConntrackFlowParser({ node: 'n1', reasons: () => reasons });
  const recs = CT.map((l) => p.push(l)).filter((r) => r !== undefined);
  assert.equal(recs.length, 4);
  for (const r of recs) flowRecordSchema.parse(r);
  const [start, , end, udpEnd] = recs;
  assert.equal(start?.event, 'start');
  assert.equal(start?.bytes, 0);
  assert.equal(end?.event, 'end');
  assert.equal(end?.bytes, 433 + 1594);
  assert.equal(end?.packets, 12);
  assert.equal(end?.durationMs, 1795471248060 - 1795471246830);
  assert.equal(end?.verdict, 'FORWARDED');
  assert.equal(end?.policy, 'default');
  assert.equal(udpEnd?.protocol, 'UDP');
  assert.equal(udpEnd?.bytes, 30);
  assert.equal(p.openConnections, 0);
});

test('conntrack parser: DESTROY without NEW is a sample; ct mark attributes the allowing policy', () => {
  const p = new ConntrackFlowParser({ node: 'n1', reasons: () => reasons });
  const r = p.push('[1795471248.060929]\t[DESTROY] ipv4     2 tcp      6 118 TIME_WAIT src=10.99.0.1 dst=10.99.0.2 sport=1 dport=80 packets=2 bytes=100 src=10.99.0.2 dst=10.99.0.1 sport=80 dport=1 packets=1 bytes=50 [ASSURED] mark=1 id=5');
  assert.equal(r?.event, 'sample');
  assert.equal(r?.policy, 'NetworkPolicy y/allow-x');
  assert.equal(r?.rule, 'ingress[0]');
  assert.equal(r?.tier, 'NetworkPolicy');
  const audit = p.push('[1795471248.060929]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=2 dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=2 mark=5 id=6');
  assert.equal(audit?.verdict, 'AUDIT');
});

test('conntrack parser: open-connection memory is bounded', () => {
  const p = new ConntrackFlowParser({ node: 'n1', maxOpen: 10 });
  for (let i = 0; i < 100; i++) p.push(`[1.0]\t    [NEW] ipv4     2 tcp      6 120 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=${i} dport=80 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=80 dport=${i} id=${i}`);
  assert.equal(p.openConnections, 10);
});

test('nft JSON: denied set elements and hit counters (real output)', () => {
  assert.deepEqual(parseDeniedSet(SET_JSON), [{ set: 'denied', saddr: '10.99.0.1', daddr: '10.99.0.2', proto: 'tcp', dport: 81, mark: 3, packets: 1, bytes: 60 }]);
  assert.deepEqual(parseHitCounters(HITS_JSON), [
    { reasonId: 17, packets: 1, bytes: 60 },
    { reasonId: 18, packets: 2, bytes: 120 },
  ]);
  assert.throws(() => parseDeniedSet('{"nope": 1}'), /nftables/);
  assert.throws(() => parseDeniedSet('not json'), /invalid JSON/);
});

test('denied set tracker: first poll is a baseline, then deltas become DROPPED/AUDIT records', () => {
  const t = new DeniedSetTracker('n1', () => reasons);
  const e = (packets: number, mark = 3) => ({ saddr: '10.0.0.1', daddr: '10.0.1.1', proto: 'tcp' as const, dport: 81, mark, packets, bytes: packets * 60 });
  assert.deepEqual(t.update(parseDeniedSet(deniedSetJson([e(5)])), 1000), []);
  const d1 = t.update(parseDeniedSet(deniedSetJson([e(8), e(2, 5)])), 1500, 500);
  assert.equal(d1.length, 2);
  const drop = d1.find((r) => r.verdict === 'DROPPED');
  assert.equal(drop?.packets, 3);
  assert.equal(drop?.bytes, 180);
  assert.equal(drop?.policy, 'NetworkPolicy y/default-deny');
  assert.equal(drop?.dstPort, 81);
  const audit = d1.find((r) => r.verdict === 'AUDIT');
  assert.equal(audit?.packets, 2);
  assert.equal(audit?.policy, 'NetworkPolicy z/audit-lockdown');
  // Unchanged → nothing; expired and re-added (counter went down) → whole value.
  assert.deepEqual(t.update(parseDeniedSet(deniedSetJson([e(8), e(2, 5)])), 2000), []);
  const d3 = t.update(parseDeniedSet(deniedSetJson([e(1)])), 2500);
  assert.equal(d3.length, 1);
  assert.equal(d3[0]?.packets, 1);
  assert.equal(t.size, 1);
});

test('hit counter tracker: deltas per reason id; an element first seen after the baseline counts whole', () => {
  const c = new CounterTracker();
  assert.deepEqual(c.update([{ reasonId: 3, packets: 1, bytes: 60 }]), []);
  assert.deepEqual(c.update([{ reasonId: 3, packets: 4, bytes: 240 }, { reasonId: 9, packets: 2, bytes: 120 }]), [
    { reasonId: 3, packets: 3, bytes: 180 },
    { reasonId: 9, packets: 2, bytes: 120 },
  ]);
  // The table was replaced (counters start again): the new value is all new.
  assert.deepEqual(c.update([{ reasonId: 3, packets: 1, bytes: 60 }]), [{ reasonId: 3, packets: 1, bytes: 60 }]);
});

test('reasons table: validated with the field named', () => {
  assert.throws(() => parseReasons({ '3': { policy: 'p', rule: 'r', tier: 'Nope', direction: 'ingress', verdict: 'deny' } }, 'r.json'), (e: unknown) => e instanceof ReasonsError && e.file === 'r.json' && e.field === '3.tier');
  assert.throws(() => parseReasons({ x: SAMPLE_REASONS[3] }), /reason ids/);
});

test('enricher: pods get namespace/workload/identity, others are external with their CIDR', () => {
  const c = syntheticCluster();
  const en = new Enricher({ lookup: c.lookup, externalCidrs: ['0.0.0.0/0', '192.168.0.0/16', '192.168.1.0/24'] });
  const pod = c.pods[0];
  assert.ok(pod);
  const ep = en.endpoint(pod.ip);
  assert.equal(ep.namespace, 'x');
  assert.equal(ep.workload, 'x/a[Deployment]');
  assert.equal(ep.identity, identityOf('x', { pod: 'a' }));
  assert.deepEqual(en.endpoint('192.168.1.7'), { ip: '192.168.1.7', external: true, cidr: '192.168.1.0/24' });
  assert.deepEqual(en.endpoint('8.8.8.8'), { ip: '8.8.8.8', external: true, cidr: '0.0.0.0/0' });
  const v6 = parseCidr('fd00::/8');
  assert.ok(v6 && cidrContains(v6, 'fd00::1') && !cidrContains(v6, 'fe80::1') && !cidrContains(v6, '10.0.0.1'));
});
