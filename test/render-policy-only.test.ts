// Policy-only mode of the renderer (pure, no root): pods known by address on forward, input
// and output; the node's own traffic first; unknown pods in the pod CIDRs fail closed unless
// the operator lets them pass; the element patch keeps the local-address set up to date, and
// the ClusterAgent batches events into one transaction each.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NodeAgent } from '../src/agent/agent.js';
import { ClusterAgent } from '../src/agent/cluster.js';
import { renderRuleset } from '../src/render/index.js';
import { PolicyEngine } from '../src/policy/index.js';
import { snapshotEvents } from '../src/source/diff.js';
import { snapshotOfCluster } from '../src/source/files.js';
import type { ClusterEvent, ClusterSnapshot, ClusterSource, ClusterSourceHandlers } from '../src/source/types.js';
import type { NetworkPolicy } from '../src/model/cluster.js';
import { e2eModel, modelPod } from './helpers/model.js';

const denyX: NetworkPolicy = { namespace: 'x', name: 'deny-a', mode: 'enforce', podSelector: { matchLabels: { pod: 'a' } }, policyTypes: ['Ingress', 'Egress'], ingress: [], egress: [] };

function engineOf(): PolicyEngine {
  const engine = new PolicyEngine();
  engine.load(e2eModel([denyX]));
  return engine;
}

const locals = [{ key: 'x/a', ip: '10.1.0.10' }, { key: 'x/b', ip: '10.1.0.11' }];

test('policy-only ruleset: forward, input and output hooks by address, the node first, unknown pods fail closed', () => {
  const rs = renderRuleset({ engine: engineOf(), localPods: locals, policyOnly: { podCidrs: ['10.1.0.0/24'] } });
  const hooks = [...rs.chains.values()].filter((c) => c.hook).map((c) => `${c.name}: ${c.hook}`);
  assert.deepEqual(hooks.sort(), [
    'forward: type filter hook forward priority filter; policy accept;',
    'host_in: type filter hook input priority filter; policy accept;',
    'host_out: type filter hook output priority filter; policy accept;',
  ]);
  const text = [...rs.chains.values()].flatMap((c) => c.rules).join('\n');
  assert.doesNotMatch(text, /iifname "wp|oifname|pod_src|pod_ifs/, 'no interface names: the CNI names them');
  assert.equal(rs.sets.has('pod_ifs'), false);
  assert.deepEqual(rs.sets.get('local_ips')?.elements, ['10.1.0.10', '10.1.0.11']);
  assert.deepEqual(rs.sets.get('pod_cidrs')?.elements, ['10.1.0.0/24']);
  const out = rs.chains.get('host_out')?.rules ?? [];
  assert.equal(out[0], 'fib saddr type local accept', "the node's own traffic is never filtered");
  const hostIn = rs.chains.get('host_in')?.rules ?? [];
  assert.deepEqual(hostIn.slice(0, 2), ['iifname "lo" accept', 'fib saddr type local accept']);
  assert.ok(hostIn.includes('ct mark set ip saddr map @eg_pod ct mark vmap @eg_id'), 'a pod reaching its node gets its egress program');
  // One base chain on forward: the unknown-pod guards before the conntrack shortcut, then the
  // source's egress program, then the ingress stage (where every egress allow also goes).
  const fwd = rs.chains.get('forward')?.rules ?? [];
  const at = (re: RegExp): number => fwd.findIndex((r) => re.test(r));
  assert.ok(at(/^ip saddr @pod_cidrs ip saddr != @local_ips meta mark set \d+ goto deny$/) >= 0);
  assert.ok(at(/^ip daddr @pod_cidrs ip daddr != @local_ips meta mark set \d+ goto deny$/) >= 0);
  assert.ok(at(/goto deny$/) < at(/^ct state established,related accept$/));
  assert.equal(fwd.at(-2), 'ct mark set ip saddr map @eg_pod ct mark vmap @eg_id');
  assert.equal(fwd.at(-1), 'goto ingress');
  assert.deepEqual(rs.chains.get('ingress')?.rules, ['ct mark set ip daddr map @in_pod ct mark vmap @in_id', 'accept']);
  assert.ok(!rs.chains.get('ingress')?.hook, 'the ingress stage is a regular chain');
  // x/a is isolated both ways: its address maps to its identity's mark in both pod maps, and the mark to its chains.
  const mark = rs.sets.get('eg_pod')?.elements.find((e) => e.startsWith('10.1.0.10 : '))?.split(' : ')[1];
  assert.ok(mark, 'x/a has an identity mark');
  assert.ok(rs.sets.get('in_pod')?.elements.includes(`10.1.0.10 : ${mark}`));
  assert.ok(rs.sets.get('eg_id')?.elements.some((e) => e.startsWith(`${mark} : jump`)));
  assert.ok(rs.sets.get('in_id')?.elements.some((e) => e.startsWith(`${mark} : jump`)));

  const open = renderRuleset({ engine: engineOf(), localPods: locals, policyOnly: { podCidrs: [] } });
  assert.equal(open.sets.has('pod_cidrs'), false, 'no pod CIDRs: unknown pods pass (an explicit choice)');
  assert.doesNotMatch([...open.chains.values()].flatMap((c) => c.rules).join('\n'), /@pod_cidrs/);
});

test('pod add and remove in policy-only mode patch the local-address set (elements only)', async () => {
  const scripts: string[] = [];
  const agent = new NodeAgent({ node: 'n1', runner: (s) => (scripts.push(s), Promise.resolve({ ok: true, stderr: '' })), policyOnly: { podCidrs: ['10.1.0.0/24'] } });
  const cluster = e2eModel([denyX]);
  const snap = snapshotOfCluster(cluster);
  await agent.apply({ events: snapshotEvents(snap), localPods: locals });
  // Another replica with x/b's labels (an identity this node already has) appears here.
  const pod = { ...modelPod('x', 'b'), name: 'b2', ip: '10.1.0.12' };
  const s = await agent.apply({ events: [{ type: 'added', kind: 'Pod', object: pod }], localPods: [...locals, { key: 'x/b2', ip: '10.1.0.12' }] });
  assert.equal(s.lastApplyOk, true);
  assert.equal(s.mode, 'partial');
  assert.ok(agent.lastRuleset?.sets.get('local_ips')?.elements.includes('10.1.0.12'));
  assert.match(scripts[scripts.length - 1], /add element inet weir local_ips \{ 10\.1\.0\.12 \}/);
  await agent.apply({ events: [{ type: 'deleted', kind: 'Pod', object: pod }], localPods: locals });
  assert.equal(agent.lastRuleset?.sets.get('local_ips')?.elements.includes('10.1.0.12'), false);
  // Equal to a fresh render of the same state.
  const fresh = renderRuleset({ engine: engineOf(), localPods: locals, policyOnly: { podCidrs: ['10.1.0.0/24'] } });
  for (const [name, set] of fresh.sets) assert.deepEqual(agent.lastRuleset?.sets.get(name)?.elements, set.elements, name);
});

/** A source whose events the test pushes. */
class PushSource implements ClusterSource {
  readonly description = 'test';
  handlers: ClusterSourceHandlers | undefined;
  constructor(private readonly initial: ClusterSnapshot) {}
  start(h: ClusterSourceHandlers): Promise<void> {
    this.handlers = h;
    h.onEvents(snapshotEvents(this.initial));
    h.onSynced?.();
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  snapshot(): ClusterSnapshot {
    return this.initial;
  }
}

test('the cluster agent gathers events that arrive together into one transaction, and is ready after the first', async () => {
  const applied: number[] = [];
  const snap = snapshotOfCluster({ ...e2eModel([denyX]), pods: e2eModel().pods.map((p) => ({ ...p, node: p.namespace === 'x' ? 'n1' : 'n2' })) });
  const source = new PushSource(snap);
  const agent = new ClusterAgent({ node: 'n1', source, policyOnly: { podCidrs: ['10.1.0.0/24'] }, runner: () => Promise.resolve({ ok: true, stderr: '' }), batchWindowMs: 20 });
  agent.onApplied = (b) => applied.push(b.events);
  assert.equal(agent.ready, false);
  await agent.start();
  assert.equal(agent.ready, true);
  assert.equal(agent.state().localPods, 3);
  const events: ClusterEvent[] = [];
  for (let i = 0; i < 50; i++) events.push({ type: 'added', kind: 'Pod', object: { ...modelPod('x', 'b'), name: `b-${i}`, ip: `10.1.0.${100 + i}`, node: i % 2 === 0 ? 'n1' : 'n2' } });
  for (const e of events) source.handlers?.onEvents([e]); // 50 separate deliveries within the window
  await agent.idle();
  assert.deepEqual(applied.slice(1), [50], 'one transaction for the 50 events');
  assert.equal(agent.state().localPods, 28);
  assert.equal(agent.state().applyErrors, 0);
  await agent.stop();
});
