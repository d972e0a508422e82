// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// The nftables data plane: renderer structure (pure), scripts validated by the kernel
// (`nft -c` in a throwaway netns), and real packets through a small topology this file
// builds itself: one "node" namespace routing three "pod" namespaces.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { AdminNetworkPolicy, BaselineAdminNetworkPolicy, Cluster, NetworkPolicy, Pod } from '../src/model/cluster.js';
import { PolicyEngine, allows, evaluatePair, podEndpoint, type Direction } from '../src/policy/index.js';
import { Applier, nftRunner, type NftRunner } from '../src/nft/index.js';
import { diffScript, fullScript, renderRuleset, rulesetStats, sourceChainName, spoofCheckedPerPacket, type LocalPod, type Ruleset } from '../src/render/index.js';
import { NodeAgent } from '../src/agent/index.js';
import { parseHitCounters } from '../src/flows/nftjson.js';
import { run } from '../src/exec/run.js';
import { assetPath, startServer, stopServer } from '../src/lab/processes.js';
import type { LabState } from '../src/lab/state.js';
import { e2eModel, modelPod } from './helpers/model.js';
import { genPolicyMatchLabels, ipBlockPeer, nsPeer, podPeer, port, rule, setSpecEgressRules, setSpecIngressRules } from './helpers/scenarios.js';

const isRoot = process.getuid?.() === 0;
const PREFIX = `wnt${randomBytes(2).toString('hex')}`;
const createdNetns: string[] = [];

async function addNetns(name: string): Promise<void> {
  await run(['ip', 'netns', 'add', name]);
  createdNetns.push(name);
}

async function removeAllNetns(): Promise<void> {
  for (const n of createdNetns.splice(0)) await run(['ip', 'netns', 'del', n], { allowFailure: true });
}

function allLocal(cluster: Cluster): LocalPod[] {
  return cluster.pods.map((p) => ({ key: `${p.namespace}/${p.name}` }));
}

function render(cluster: Cluster, local: LocalPod[] = allLocal(cluster)): Ruleset {
  return renderRuleset({ engine: new PolicyEngine(cluster), localPods: local });
}

const anp = (name: string, priority: number, subjectNs: string, ingress: AdminNetworkPolicy['ingress'], mode: 'enforce' | 'audit' = 'enforce'): AdminNetworkPolicy => ({
  name,
  priority,
  mode,
  subject: { namespaces: { matchLabels: { ns: subjectNs } } },
  ingress,
  egress: [],
});
const fromNs = (ns: string) => [{ kind: 'namespaces' as const, namespaces: { matchLabels: { ns } } }];

/** A policy mix touching every feature of the renderer. */
function richCluster(extraReplicas = 0): Cluster {
  const base = e2eModel([
    genPolicyMatchLabels('x', 'allow-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })], [port(80), port('serve-81-udp', 'UDP')]))),
    genPolicyMatchLabels(
      'x',
      'egress-mix',
      { pod: 'b' },
      setSpecEgressRules(rule([ipBlockPeer('10.0.0.0/8', ['10.2.0.0/16'])], [port(80, 'TCP', 90), port('serve-81-tcp')]), rule([nsPeer({})], [port(53, 'UDP'), port(53, 'SCTP')])),
    ),
    { ...genPolicyMatchLabels('y', 'audit-deny', {}, setSpecIngressRules()), mode: 'audit' },
  ]);
  const pods: Pod[] = [...base.pods];
  for (let r = 0; r < extraReplicas; r++) {
    for (const ns of ['x', 'y', 'z']) {
      for (const p of ['a', 'b', 'c']) {
        const m = modelPod(ns, p);
        pods.push({ ...m, name: `${p}-r${r}`, ip: `10.${['x', 'y', 'z'].indexOf(ns) + 1}.${1 + Math.floor(r / 200)}.${(r % 200) * 3 + ['a', 'b', 'c'].indexOf(p) + 1}` });
      }
    }
  }
  const banp: BaselineAdminNetworkPolicy = {
    name: 'default',
    mode: 'enforce',
    subject: { namespaces: {} },
    ingress: [{ name: 'deny-z', action: 'Deny', peers: fromNs('z') }],
    egress: [],
  };
  return {
    ...base,
    pods,
    adminNetworkPolicies: [
      anp('anp1', 10, 'x', [
        { name: 'deny-z', action: 'Deny', peers: fromNs('z') },
        { name: 'pass-y', action: 'Pass', peers: fromNs('y'), ports: [{ kind: 'portNumber', protocol: 'TCP', port: 80 }] },
      ]),
    ],
    baselineAdminNetworkPolicy: banp,
  };
}

// ===================================================================== pure renderer

describe('nft renderer (pure)', () => {
  it('is deterministic: engines built in different orders render byte-identical scripts', () => {
    const c = richCluster();
    const reversed: Cluster = { ...c, pods: [...c.pods].reverse(), networkPolicies: [...c.networkPolicies].reverse() };
    const a = fullScript(render(c));
    const b = fullScript(render(reversed));
    assert.equal(a, b);
    assert.match(a, /^add table inet weir\ndelete table inet weir\n/);
  });

  it('rule count grows with policies and identities, never with pods: double the pods → same rules, more elements', () => {
    const small = rulesetStats(render(richCluster(1)));
    const big = rulesetStats(render(richCluster(3)));
    assert.equal(big.rules, small.rules);
    assert.equal(big.chains, small.chains);
    assert.ok(big.elements > small.elements, `${big.elements} > ${small.elements}`);
  });

  it('puts membership in sets: pod groups hold cluster-wide pod IPs, CIDR groups intervals with except', () => {
    const rs = render(richCluster(), [{ key: 'x/b' }]);
    const cidr = [...rs.sets.values()].find((s) => s.flags.includes('interval'));
    assert.ok(cidr);
    assert.deepEqual(cidr.elements, ['10.0.0.0/15', '10.3.0.0-10.255.255.255']);
    // Only the local pod x/b is in the pod → identity maps, but peer groups hold every matching pod.
    assert.equal(new Set(['eg_pod', 'in_pod'].flatMap((m) => rs.sets.get(m)?.elements ?? []).map((e) => e.split(' : ')[0])).size, 1);
    const allNs = [...rs.sets.values()].find((s) => s.name.startsWith('g_') && s.elements.length === 9);
    assert.ok(allNs, 'group of all pods in all namespaces');
  });

  it('renders tiers ANP → NP → BANP with shared policy chains and per-reason deny chains', () => {
    const rs = render(richCluster());
    const chains = [...rs.chains.values()];
    const xa = chains.find((c) => c.name.startsWith('in_x_a_'));
    assert.ok(xa);
    assert.match(xa.rules[0], /^jump adm_in_/);
    // allow-b selects one identity on this node: its rules are inlined (no np_ chain, no jump).
    assert.match(xa.rules[1], /^ip saddr @g_\w+ tcp dport 80 update @hits \{ \d+ counter \} accept$/);
    assert.match(xa.rules[2], /^ip saddr @g_\w+ udp dport 81 update @hits \{ \d+ counter \} accept$/);
    assert.match(xa.rules[3], /^meta mark set \d+ goto deny$/);
    assert.ok(!chains.some((c) => c.name.startsWith('np_x_allow_b_in_')));
    const xb = chains.find((c) => c.name.startsWith('in_x_b_'));
    assert.ok(xb);
    assert.match(xb.rules[1], /^jump ban_in_/, 'not isolated: on to the baseline');
    const adm = rs.chains.get(xa.rules[0].slice('jump '.length));
    assert.ok(adm);
    assert.match(adm.rules[0], /meta mark set \d+ goto deny$/, 'ANP Deny');
    assert.match(adm.rules[1], /tcp dport 80 return$/, 'ANP Pass returns to the NP tier');
    // One shared deny chain: count the mark in the hits set, record, drop.
    const deny = rs.chains.get('deny');
    assert.ok(deny);
    assert.equal(deny.rules[0], 'update @hits { meta mark counter }');
    assert.match(deny.rules[1], /update @denied \{ ip saddr \. ip daddr \. meta l4proto \. th dport \. meta mark \} drop$/);
    const id = /^meta mark set (\d+)/.exec(xa.rules[3])?.[1] ?? '';
    assert.equal(rs.sets.get('hits')?.dynamic, true, 'hits is filled from the packet path');
    // Allows count by a constant key and never touch the packet mark (it may carry kube-proxy's
    // masquerade bit or a CNI's bits); only packets on their way to be dropped get weir's mark.
    const rules = [...rs.chains.values()].flatMap((c) => c.rules);
    assert.deepEqual(rules.filter((r) => /meta mark set/.test(r) && !/goto deny$/.test(r)), [], 'the mark is set only on the way to deny');
    // hits is declared first (the kernel looks sets up by name in creation order).
    assert.match(fullScript(rs).split('\n').find((l) => /^\s+(set|map) /.test(l)) ?? '', /set (hits|denied) /);
    assert.ok(rs.counted.includes(Number(id)), 'the deny reason is counted');
    assert.deepEqual(rs.reasons[id], { policy: 'NetworkPolicy x/allow-b', rule: 'default deny (isolated)', tier: 'NetworkPolicy', direction: 'ingress', verdict: 'deny' });
    // Egress (inlined in x/b's chain): SCTP as sctp dport, ports merged per protocol, endPort as a range.
    const np = chains.find((c) => c.name.startsWith('eg_x_b_'));
    assert.ok(np);
    assert.ok(np.rules.some((r) => /tcp dport 80-90 update @hits \{ \d+ counter \} goto ingress$/.test(r)), "an egress allow goes on to the ingress stage");
    assert.ok(np.rules.some((r) => /sctp dport 53 /.test(r)));
  });

  it('shares a NetworkPolicy chain between the identities it selects (jump), inlines it for one', () => {
    const c = richCluster();
    const shared = genPolicyMatchLabels('z', 'allow-x', {}, setSpecIngressRules(rule([nsPeer({ matchLabels: { ns: 'x' } })], [port(80)])));
    const rs = render({ ...c, networkPolicies: [...c.networkPolicies, shared] });
    const np = [...rs.chains.values()].filter((ch) => ch.name.startsWith('np_z_allow_x_in_'));
    assert.equal(np.length, 1, 'one chain for z/a, z/b, z/c');
    for (const p of ['a', 'b', 'c']) {
      const id = [...rs.chains.values()].find((ch) => ch.name.startsWith(`in_z_${p}_`));
      assert.ok(id?.rules.includes(`jump ${np[0].name}`), `z/${p} jumps to the shared chain`);
    }
    // Only local identities are rendered: with z/a alone on this node, the chain is inlined.
    const one = render({ ...c, networkPolicies: [...c.networkPolicies, shared] }, [{ key: 'z/a' }]);
    assert.ok(![...one.chains.keys()].some((n) => n.startsWith('np_')));
    assert.ok(![...one.chains.keys()].some((n) => n.startsWith('in_x_') || n.startsWith('eg_x_')), 'no chains for identities without local pods');
  });

  it('resolves named ports: ingress per destination identity, egress as per-pod set elements', () => {
    const c = richCluster();
    // Give x/a's twin a different number for the same port name: a second chain, not a rule per pod.
    const twin: Pod = { ...modelPod('x', 'a', { pod: 'a', twin: 'yes' }), name: 'a2', ip: '10.1.0.99', ports: [{ name: 'serve-81-udp', port: 8181, protocol: 'UDP' }] };
    const rs = render({ ...c, pods: [...c.pods, twin] });
    // One identity chain each (the policy's rules inlined), resolved per identity, not per pod.
    const npChains = [...rs.chains.values()].filter((ch) => ch.name.startsWith('in_x_a_'));
    assert.equal(npChains.length, 2);
    assert.ok(npChains.some((ch) => ch.rules.some((r) => r.includes('udp dport 8181'))));
    assert.ok(npChains.some((ch) => ch.rules.some((r) => r.includes('udp dport 81 '))));
    const named = [...rs.sets.values()].find((s) => s.type === 'ipv4_addr . inet_proto . inet_service');
    assert.ok(named);
    // serve-81-tcp on every pod in 10.0.0.0/8 except 10.2.0.0/16 (x and z): 6 elements.
    assert.equal(named.elements.length, 6);
    assert.ok(named.elements.includes('10.1.0.10 . tcp . 81'));
    assert.ok(!named.elements.some((e) => e.startsWith('10.2.')));
  });

  it('renders audit mode as a non-enforcing pre-pass with the audit reason', () => {
    const rs = render(richCluster());
    const ya = [...rs.chains.values()].find((c) => c.name.startsWith('in_y_a_'));
    assert.ok(ya);
    assert.match(ya.rules[0], /^jump aut?_in_/);
    const audit = rs.chains.get(ya.rules[0].slice('jump '.length));
    assert.ok(audit);
    // The audit default deny: count and record under its reason, then return, in two
    // alternatives (with the port for TCP/UDP/SCTP, port 0 for the rest).
    const [withPort, noPort] = audit.rules.slice(-2);
    const id = /update @hits \{ (\d+) counter \} update @denied \{ ip saddr \. ip daddr \. meta l4proto \. th dport \. \1 \} return$/.exec(withPort ?? '')?.[1];
    assert.ok(id, `audit default deny counts and records with its reason: ${withPort}`);
    assert.match(withPort ?? '', /^meta l4proto \{ tcp, udp, sctp \} /);
    assert.equal(noPort, `update @hits { ${id} counter } update @denied { ip saddr . ip daddr . meta l4proto . 0 . ${id} } return`);
    assert.ok(audit.rules.every((r) => !/\bdrop$/.test(r) && !/meta mark set/.test(r)), 'audit never drops and never marks the packet');
    assert.equal(rs.reasons[id]?.verdict, 'audit');
    assert.equal(rs.reasons[id]?.policy, 'NetworkPolicy y/audit-deny');
    // The audit policy is not enforced: y/a is not isolated in the enforce program.
    assert.ok(!ya.rules.some((r) => /goto deny$/.test(r)));
  });

  it('partial sync: a pod of an existing identity changes set and map elements only', () => {
    const c = richCluster();
    const before = render(c);
    const extra: Pod = { ...modelPod('x', 'a'), name: 'a-new', ip: '10.1.0.77' };
    const after = render({ ...c, pods: [...c.pods, extra] });
    const diff = diffScript(before, after);
    assert.ok(diff);
    const lines = diff.script.trim().split('\n');
    assert.ok(lines.length > 0);
    assert.ok(lines.every((l) => l.startsWith('add element ')), diff.script);
    assert.equal(diff.summary.chainsChanged + diff.summary.chainsAdded + diff.summary.chainsRemoved, 0);
    // A data element (address → identity mark), never a new verdict: no jump for the kernel to validate.
    assert.match(diff.script, /add element inet weir (eg|in)_pod \{ 10\.1\.0\.77 : 0x[89a-f][0-9a-f]{7} \}/);
    assert.doesNotMatch(diff.script, / : goto /);
    // And back: removing it deletes exactly those elements.
    const back = diffScript(after, before);
    assert.ok(back?.script.trim().split('\n').every((l) => l.startsWith('delete element ')));
  });

  it('partial sync: a policy change flushes and refills only the chains whose rules changed', () => {
    const c = richCluster();
    const before = render(c);
    const changed: NetworkPolicy = genPolicyMatchLabels('x', 'allow-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'c' } })], [port(80), port('serve-81-udp', 'UDP')])));
    const after = render({ ...c, networkPolicies: c.networkPolicies.map((p) => (p.name === 'allow-b' ? changed : p)) });
    const diff = diffScript(before, after);
    assert.ok(diff);
    const flushed = diff.script.split('\n').filter((l) => l.startsWith('flush chain'));
    assert.equal(flushed.length, 1, diff.script);
    assert.match(flushed[0], /in_x_a_/, 'the chain that holds allow-b (inlined: one identity uses it)');
    assert.equal(diffScript(after, after)?.script, '');
  });
});

describe('nft agent fast path (pure, stub runner)', () => {
  const canonical = (rs: Ruleset | undefined) => (rs ? fullScript(rs) : '');

  it('pod add/remove of an existing identity is patched, equals a full render, and applies elements only', async () => {
    const scripts: string[] = [];
    const agent = new NodeAgent({ node: 'n0', runner: async (script) => (scripts.push(script), { ok: true, stderr: '' }) });
    const c = richCluster();
    const local = (cl: Cluster) => cl.pods.filter((p) => p.namespace !== 'z').map((p) => ({ key: `${p.namespace}/${p.name}` }));
    await agent.sync(c, local(c));
    const grown: Cluster = { ...c, pods: [...c.pods, { ...modelPod('x', 'a'), name: 'a-new', ip: '10.1.0.77' }, { ...modelPod('z', 'b'), name: 'b-new', ip: '10.3.0.78' }] };
    const status = await agent.sync(grown, local(grown));
    assert.equal(status.mode, 'partial');
    assert.equal(canonical(agent.lastRuleset), canonical(render(grown, local(grown))));
    assert.ok(scripts[1].trim().split('\n').every((l) => l.startsWith('add element ')), scripts[1]);
    assert.match(scripts[1], /10\.1\.0\.77 \. tcp \. 81/, 'egress named-port set element');
    await agent.sync(c, local(c));
    assert.equal(canonical(agent.lastRuleset), canonical(render(c, local(c))));
    assert.ok(scripts[2].trim().split('\n').every((l) => l.startsWith('delete element ')), scripts[2]);
  });

  it('pod events (podAdded/podRemoved): element-only scripts, no cluster diff, same table as a full render', async () => {
    const scripts: string[] = [];
    const agent = new NodeAgent({ node: 'n0', runner: async (script) => (scripts.push(script), { ok: true, stderr: '' }) });
    const c = richCluster();
    // Interface indexes given (these veths exist nowhere: the agent would find none to resolve).
    const local = (cl: Cluster): LocalPod[] => cl.pods.filter((p) => p.namespace !== 'z').map((p, i) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip, hostVeth: `v-${p.namespace}-${p.name}`, hostVethIndex: 100 + i }));
    await agent.sync(c, local(c));
    const pod: Pod = { ...modelPod('x', 'a'), name: 'a-new', ip: '10.1.0.77' };
    const grown: Cluster = { ...c, pods: [...c.pods, pod] };
    const added = await agent.podAdded(pod, { key: 'x/a-new', ip: pod.ip, hostVeth: 'v-x-a-new', hostVethIndex: 100 + local(grown).length - 1 });
    assert.equal(added.mode, 'partial');
    assert.equal(canonical(agent.lastRuleset), canonical(render(grown, local(grown))));
    const lines = scripts[1].trim().split('\n');
    assert.ok(lines.every((l) => l.startsWith('add element ')), scripts[1]);
    assert.ok(lines.some((l) => l.includes(`pod_src { ${100 + local(grown).length - 1} . 10.1.0.77 }`)), 'anti-spoofing element');
    assert.ok(lines.some((l) => /(eg|in)_pod \{ 10\.1\.0\.77 : 0x[89a-f][0-9a-f]{7} \}/.test(l)), 'pod → identity element');
    assert.ok(lines.every((l) => !l.includes(' : goto ')), 'no verdict element for a pod of a known identity');
    const removed = await agent.podRemoved('x', 'a-new');
    assert.equal(removed.mode, 'partial');
    assert.equal(canonical(agent.lastRuleset), canonical(render(c, local(c))));
    assert.ok(scripts[2].trim().split('\n').every((l) => l.startsWith('delete element ')), scripts[2]);
    // A later full sync starts from what the events left: nothing to do.
    const again = await agent.sync(c, local(c));
    assert.equal(again.mode, 'noop');
    // A pod of a new identity: a full render (new chains), still correct.
    const fresh: Pod = { ...modelPod('x', 'd', { pod: 'd' }), ip: '10.1.0.88' };
    const withFresh: Cluster = { ...c, pods: [...c.pods, fresh] };
    await agent.podAdded(fresh, { key: 'x/d', ip: fresh.ip, hostVeth: 'v-x-d', hostVethIndex: 100 + local(withFresh).length - 1 });
    assert.equal(canonical(agent.lastRuleset), canonical(render(withFresh, local(withFresh))));
  });

  it('a pod with a new identity falls back to a full render', async () => {
    const agent = new NodeAgent({ node: 'n0', runner: async () => ({ ok: true, stderr: '' }) });
    const c = richCluster();
    await agent.sync(c, allLocal(c));
    const grown: Cluster = { ...c, pods: [...c.pods, { ...modelPod('x', 'd', { pod: 'b', extra: 'yes' }), ip: '10.1.0.88' }] };
    await agent.sync(grown, allLocal(grown));
    assert.equal(canonical(agent.lastRuleset), canonical(render(grown)));
  });
});

// ===================================================================== kernel validation

async function nftCheck(netns: string, script: string): Promise<{ ok: boolean; stderr: string }> {
  const r = await run(['ip', 'netns', 'exec', netns, 'nft', '-c', '-f', '-'], { input: script, allowFailure: true });
  return { ok: r.code === 0, stderr: r.stderr };
}

describe('nft scripts accepted by the kernel (nft -c)', { skip: !isRoot && 'needs root' }, () => {
  const ns = `${PREFIX}-chk`;
  before(() => addNetns(ns));
  after(removeAllNetns);

  it('full scripts of the e2e model, rich policies and SCTP validate', async () => {
    for (const c of [e2eModel(), richCluster(), richCluster(2)]) {
      const r = await nftCheck(ns, fullScript(render(c)));
      assert.ok(r.ok, r.stderr);
    }
  });

  it('partial scripts validate against the table they start from', async () => {
    const c = richCluster();
    const before = render(c);
    const applied = await run(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: fullScript(before), allowFailure: true });
    assert.equal(applied.code, 0, applied.stderr);
    const changed = { ...c, networkPolicies: c.networkPolicies.slice(1), pods: [...c.pods, { ...modelPod('z', 'c'), name: 'c2', ip: '10.3.0.50' }] };
    const diff = diffScript(before, render(changed));
    assert.ok(diff);
    const r = await nftCheck(ns, diff.script);
    assert.ok(r.ok, `${r.stderr}\n${diff.script}`);
  });
});

// ===================================================================== real packets

interface TopoPod {
  readonly key: string;
  readonly netns: string;
  readonly ip: string;
  readonly veth: string;
}

/** One node namespace routing pod namespaces over veths; servers on TCP/UDP 80 and 81. */
class Topology {
  readonly node = `${PREFIX}-n0`;
  readonly pods = new Map<string, TopoPod>();
  readonly pids: number[] = [];
  readonly logDir: Promise<string> = mkdtemp(join(tmpdir(), 'weir-nft-test-'));

  async up(keys: readonly string[]): Promise<void> {
    await addNetns(this.node);
    await run(['ip', 'netns', 'exec', this.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    // Whatever the host's (a new namespace copies it): the strict filter per veth is in force.
    await run(['ip', 'netns', 'exec', this.node, 'sysctl', '-qw', 'net.ipv4.conf.all.rp_filter=0']);
    await run(['ip', '-n', this.node, 'link', 'set', 'lo', 'up']);
    let i = 0;
    for (const key of keys) {
      i++;
      const netns = `${PREFIX}-p${i}`;
      const veth = `wv${i}`;
      const ip = `10.99.${i}.2`;
      await addNetns(netns);
      await run(['ip', '-n', this.node, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
      await run(['ip', '-n', this.node, 'addr', 'add', `10.99.${i}.1/24`, 'dev', veth]);
      await run(['ip', '-n', this.node, 'link', 'set', veth, 'up']);
      await run(['ip', '-n', netns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
      await run(['ip', '-n', netns, 'link', 'set', 'eth0', 'up']);
      await run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
      await run(['ip', '-n', netns, 'route', 'add', 'default', 'via', `10.99.${i}.1`]);
      this.pods.set(key, { key, netns, ip, veth });
      const ports = [80, 81].flatMap((p) => [{ port: p, protocol: 'TCP' as const }, { port: p, protocol: 'UDP' as const }]);
      this.pids.push(await startServer({ netns, identity: key, ports, logDir: await this.logDir }));
    }
  }

  async down(): Promise<void> {
    for (const pid of this.pids.splice(0)) await stopServer(pid).catch(() => undefined);
    await rm(await this.logDir, { recursive: true, force: true });
  }

  /** Cluster pods for the topology: labels pod=<name>, namespace labels ns=<name>. */
  cluster(policies: Partial<Cluster> = {}): Cluster {
    const pods: Pod[] = [...this.pods.values()].map((p) => {
      const [ns, name] = p.key.split('/') as [string, string];
      return {
        namespace: ns,
        name,
        labels: { pod: name },
        ports: [80, 81].flatMap((n) => [{ name: `serve-${n}-tcp`, port: n, protocol: 'TCP' as const }, { name: `serve-${n}-udp`, port: n, protocol: 'UDP' as const }]),
        hostNetwork: false,
        ip: p.ip,
        node: 'n0',
        workload: `${p.key}[Pod]`,
      };
    });
    const nss = [...new Set(pods.map((p) => p.namespace))];
    return {
      namespaces: nss.map((n) => ({ name: n, labels: { ns: n, 'kubernetes.io/metadata.name': n } })),
      nodes: [{ name: 'n0', labels: {} }],
      workloads: [],
      pods,
      services: [],
      networkPolicies: [],
      adminNetworkPolicies: [],
      ...policies,
    };
  }

  localPods(): LocalPod[] {
    return [...this.pods.values()].map((p) => ({ key: p.key, ip: p.ip, hostVeth: p.veth }));
  }

  /** Probes every ordered pair on the given ports; returns `from->to proto/port` → reachable. */
  async probeAll(probes: readonly { protocol: 'TCP' | 'UDP'; port: number }[]): Promise<Map<string, boolean>> {
    const out = new Map<string, boolean>();
    await Promise.all(
      [...this.pods.values()].map(async (src) => {
        const targets = [...this.pods.values()]
          .filter((d) => d !== src)
          .flatMap((d) => probes.map((p) => ({ id: `${src.key}->${d.key} ${p.protocol}/${p.port}`, ip: d.ip, port: p.port, protocol: p.protocol })));
        const r = await run(['ip', 'netns', 'exec', src.netns, process.execPath, assetPath('prober.mjs')], {
          input: JSON.stringify({ targets, timeoutMs: 400, udpAttempts: 2, concurrency: 32 }),
          timeoutMs: 20_000,
        });
        for (const cell of JSON.parse(r.stdout) as { id: string; ok: boolean }[]) out.set(cell.id, cell.ok);
      }),
    );
    return out;
  }

  async nft(args: readonly string[]): Promise<string> {
    return (await run(['ip', 'netns', 'exec', this.node, 'nft', ...args])).stdout;
  }
}

const PROBES = [
  { protocol: 'TCP' as const, port: 80 },
  { protocol: 'UDP' as const, port: 81 },
];

/** The engine's verdict for every probed cell. */
function expected(cluster: Cluster): Map<string, boolean> {
  const engine = new PolicyEngine(cluster);
  const out = new Map<string, boolean>();
  for (const s of cluster.pods) {
    for (const d of cluster.pods) {
      if (s === d) continue;
      const pair = evaluatePair(engine, podEndpoint(engine, s), podEndpoint(engine, d));
      for (const p of PROBES) out.set(`${s.namespace}/${s.name}->${d.namespace}/${d.name} ${p.protocol}/${p.port}`, allows(pair.allowed, p.protocol, p.port));
    }
  }
  return out;
}

function assertMatrix(observed: Map<string, boolean>, want: Map<string, boolean>, spot: Record<string, boolean>): void {
  const wrong: string[] = [];
  for (const [cell, ok] of want) if (observed.get(cell) !== ok) wrong.push(`${cell}: engine ${ok ? 'allow' : 'deny'}, kernel ${observed.get(cell) ? 'allow' : 'deny'}`);
  assert.deepEqual(wrong, [], 'kernel and engine disagree');
  for (const [cell, ok] of Object.entries(spot)) assert.equal(observed.get(cell), ok, `spot check ${cell}`);
}

/** Packets counted per reason id (the `hits` set), read from the kernel. */
async function counters(topo: Topology): Promise<Map<string, number>> {
  return new Map(parseHitCounters(await topo.nft(['-j', 'list', 'set', 'inet', 'weir', 'hits'])).map((c) => [String(c.reasonId), c.packets]));
}

function reasonId(rs: Ruleset, match: (r: { policy: string; rule: string; verdict: string; direction: Direction }) => boolean): string {
  const id = Object.entries(rs.reasons).find(([, r]) => match(r))?.[0];
  assert.ok(id, 'reason present');
  return id;
}

describe('nft data plane with real packets', { skip: !isRoot && 'needs root' }, () => {
  const topo = new Topology();
  let agent: NodeAgent;
  before(async () => {
    await topo.up(['x/a', 'x/b', 'y/a']);
    agent = new NodeAgent({ node: 'n0', netns: topo.node });
  });
  after(async () => {
    await topo.down();
    await removeAllNetns();
  });

  const scenario = async (policies: Partial<Cluster>, spot: Record<string, boolean>): Promise<Ruleset> => {
    const c = topo.cluster(policies);
    const status = await agent.sync(c, topo.localPods());
    assert.ok(status.lastApplyOk, status.error ?? 'apply failed');
    assertMatrix(await topo.probeAll(PROBES), expected(c), spot);
    assert.ok(agent.lastRuleset);
    return agent.lastRuleset;
  };

  it('no policies: everything reachable', async () => {
    await scenario({}, { 'x/a->x/b TCP/80': true, 'y/a->x/a UDP/81': true });
  });

  it('default deny ingress; established replies pass although the reverse direction is denied', async () => {
    const rs = await scenario(
      { networkPolicies: [genPolicyMatchLabels('x', 'deny-a', { pod: 'a' }, setSpecIngressRules())] },
      { 'x/b->x/a TCP/80': false, 'y/a->x/a UDP/81': false, 'x/a->x/b TCP/80': true, 'x/a->y/a UDP/81': true },
    );
    // x/a → x/b worked: the TCP reply from x/b to x/a is established and passes ingress.
    const id = reasonId(rs, (r) => r.rule === 'default deny (isolated)' && r.policy === 'NetworkPolicy x/deny-a');
    assert.ok(((await counters(topo)).get(id) ?? 0) > 0, 'default-deny counter counts');
    const denied = await topo.nft(['list', 'set', 'inet', 'weir', 'denied']);
    assert.match(denied, new RegExp(`10\\.99\\.2\\.2 \\. 10\\.99\\.1\\.2 \\. tcp \\. 80 \\. 0x${Number(id).toString(16).padStart(8, '0')}`));
  });

  it('allow from a selector', async () => {
    await scenario(
      { networkPolicies: [genPolicyMatchLabels('x', 'allow-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })], [port(80)])))] },
      { 'x/b->x/a TCP/80': true, 'x/b->x/a UDP/81': false, 'y/a->x/a TCP/80': false },
    );
  });

  it('egress ipBlock with except', async () => {
    await scenario(
      { networkPolicies: [genPolicyMatchLabels('x', 'eg-b', { pod: 'b' }, setSpecEgressRules(rule([ipBlockPeer('10.99.0.0/16', ['10.99.3.0/24'])])))] },
      { 'x/b->x/a TCP/80': true, 'x/b->y/a TCP/80': false, 'x/b->y/a UDP/81': false, 'y/a->x/b TCP/80': true },
    );
  });

  it('ANP Deny wins over a NetworkPolicy allow', async () => {
    await scenario(
      {
        networkPolicies: [genPolicyMatchLabels('x', 'allow-all', { pod: 'a' }, setSpecIngressRules(rule()))],
        adminNetworkPolicies: [anp('deny-y', 5, 'x', [{ name: 'deny-from-y', action: 'Deny', peers: fromNs('y') }])],
      },
      { 'y/a->x/a TCP/80': false, 'x/b->x/a TCP/80': true, 'y/a->x/b UDP/81': false },
    );
  });

  it('ANP Pass hands over to NetworkPolicy, skipping lower-priority ANP rules', async () => {
    await scenario(
      {
        networkPolicies: [genPolicyMatchLabels('x', 'allow-y', { pod: 'a' }, setSpecIngressRules(rule([nsPeer({ matchLabels: { ns: 'y' } })], [port(80)])))],
        adminNetworkPolicies: [
          anp('pass-y', 1, 'x', [{ name: 'pass', action: 'Pass', peers: fromNs('y'), ports: [{ kind: 'portNumber', protocol: 'TCP', port: 80 }] }]),
          anp('deny-y', 2, 'x', [{ name: 'deny', action: 'Deny', peers: fromNs('y') }]),
        ],
      },
      { 'y/a->x/a TCP/80': true, 'y/a->x/a UDP/81': false, 'y/a->x/b TCP/80': true, 'y/a->x/b UDP/81': false },
    );
  });

  it('BANP default deny applies to non-isolated pods only', async () => {
    await scenario(
      {
        networkPolicies: [genPolicyMatchLabels('x', 'allow-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })])))],
        baselineAdminNetworkPolicy: { name: 'default', mode: 'enforce', subject: { namespaces: {} }, ingress: [{ name: 'deny-all', action: 'Deny', peers: [{ kind: 'namespaces', namespaces: {} }] }], egress: [] },
      },
      { 'x/b->x/a TCP/80': true, 'y/a->x/a TCP/80': false, 'x/a->x/b TCP/80': false, 'x/a->y/a UDP/81': false },
    );
  });

  it('audit mode passes traffic but counts it and records it in `denied` with the audit reason', async () => {
    const audit: NetworkPolicy = { ...genPolicyMatchLabels('x', 'audit-deny', { pod: 'a' }, setSpecIngressRules()), mode: 'audit' };
    const rs = await scenario({ networkPolicies: [audit] }, { 'x/b->x/a TCP/80': true, 'y/a->x/a UDP/81': true });
    const id = reasonId(rs, (r) => r.verdict === 'audit' && r.policy === 'NetworkPolicy x/audit-deny');
    assert.ok(((await counters(topo)).get(id) ?? 0) > 0, 'audit counter counts');
    const denied = await topo.nft(['list', 'set', 'inet', 'weir', 'denied']);
    assert.match(denied, new RegExp(`10\\.99\\.2\\.2 \\. 10\\.99\\.1\\.2 \\. tcp \\. 80 \\. 0x${Number(id).toString(16).padStart(8, '0')}`));
    // Packets that pass keep their mark (it may be kube-proxy's masquerade bit or a CNI's):
    // count forwarded packets leaving with a mark, after weir's table, over new connections.
    await topo.nft(['add', 'table', 'inet', 'wmarks']);
    try {
      await topo.nft(['add', 'chain', 'inet', 'wmarks', 'post', '{ type filter hook postrouting priority 100; }']);
      await topo.nft(['add', 'rule', 'inet', 'wmarks', 'post', 'meta mark != 0 counter']);
      await topo.nft(['add', 'rule', 'inet', 'wmarks', 'post', 'counter']);
      const again = await topo.probeAll([{ protocol: 'TCP', port: 80 }]);
      assert.equal(again.get('x/b->x/a TCP/80'), true, 'audited traffic passes');
      const listed = await topo.nft(['list', 'chain', 'inet', 'wmarks', 'post']);
      const [marked, all] = [...listed.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
      assert.ok((all ?? 0) > 0, `the watch saw forwarded packets: ${listed}`);
      assert.equal(marked, 0, `no forwarded packet carries a mark: ${listed}`);
    } finally {
      await topo.nft(['delete', 'table', 'inet', 'wmarks']);
    }
  });

  it('untracked packets (no ct mark to dispatch on) are dropped to a pod with an ingress program and pass between pods without one', async () => {
    await scenario(
      { networkPolicies: [genPolicyMatchLabels('x', 'allow-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })], [port(80)])))] },
      { 'x/b->x/a TCP/80': true, 'y/a->x/b TCP/80': true },
    );
    // Someone else's table takes the node's forwarded traffic out of conntrack.
    await topo.nft(['add', 'table', 'inet', 'wnotrack']);
    try {
      await topo.nft(['add', 'chain', 'inet', 'wnotrack', 'pre', '{ type filter hook prerouting priority raw; }']);
      await topo.nft(['add', 'rule', 'inet', 'wnotrack', 'pre', 'meta l4proto tcp notrack']);
      const cells = await topo.probeAll([{ protocol: 'TCP', port: 80 }]);
      assert.equal(cells.get('x/b->x/a TCP/80'), false, 'allowed, but untracked: no identity to judge it by, dropped');
      assert.equal(cells.get('y/a->x/b TCP/80'), true, 'no program on either side: untracked passes as tracked would');
    } finally {
      await topo.nft(['delete', 'table', 'inet', 'wnotrack']);
    }
    const again = await topo.probeAll([{ protocol: 'TCP', port: 80 }]);
    assert.equal(again.get('x/b->x/a TCP/80'), true, 'tracked again: allowed');
  });

  it('a failed apply keeps the previous ruleset in force and is reported', async () => {
    const c = topo.cluster({ networkPolicies: [genPolicyMatchLabels('x', 'deny-a', { pod: 'a' }, setSpecIngressRules())] });
    const ok = await agent.sync(c, topo.localPods());
    assert.ok(ok.lastApplyOk);
    const before = await topo.nft(['list', 'table', 'inet', 'weir']);
    // Same desired state plus a change, through a runner that corrupts the end of every script.
    const real = nftRunner(topo.node);
    const broken: NftRunner = (script) => real(`${script}add rule inet weir no_such_chain accept\n`);
    const applier = new Applier(broken);
    const failed = await applier.apply(renderRuleset({ engine: new PolicyEngine(topo.cluster()), localPods: topo.localPods() }));
    assert.equal(failed.ok, false);
    assert.match(failed.error ?? '', /no_such_chain|No such file/);
    const afterText = await topo.nft(['list', 'table', 'inet', 'weir']);
    const strip = (t: string) => t.replace(/packets \d+ bytes \d+/g, '').replace(/expires \S+/g, '');
    assert.equal(strip(afterText), strip(before));
    const cells = await topo.probeAll([{ protocol: 'TCP', port: 80 }]);
    assert.equal(cells.get('x/b->x/a TCP/80'), false, 'still enforced');
  });

  it('strict mode flushes conntrack entries of connections no longer allowed', async () => {
    const strictAgent = new NodeAgent({ node: 'n0', netns: topo.node, strict: true });
    await strictAgent.sync(topo.cluster(), topo.localPods());
    // A long-lived UDP flow x/b → x/a is established (replies seen).
    const cells = await topo.probeAll([{ protocol: 'UDP', port: 81 }]);
    assert.equal(cells.get('x/b->x/a UDP/81'), true);
    const list = async () => (await run(['ip', 'netns', 'exec', topo.node, 'conntrack', '-L', '-p', 'udp', '--dport', '81', '-s', '10.99.2.2', '-d', '10.99.1.2'], { allowFailure: true })).stdout;
    assert.match(await list(), /dport=81/);
    const status = await strictAgent.sync(topo.cluster({ networkPolicies: [genPolicyMatchLabels('x', 'deny-a', { pod: 'a' }, setSpecIngressRules())] }), topo.localPods());
    assert.ok(status.conntrackDeleted >= 1, JSON.stringify(status));
    assert.doesNotMatch(await list(), /dport=81/);
  });

  it('agent process: watches the lab dir, survives SIGKILL mid-apply, and a restart converges', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weir-nft-agent-'));
    const node = topo.node;
    const pods = [...topo.pods.values()];
    const state: LabState = {
      version: 1,
      prefix: `${PREFIX}-`,
      dir,
      status: 'up',
      updatedAt: new Date().toISOString(),
      network: { clusterCidr: '10.99.0.0/16', underlayCidr: '192.0.2.0/24', externalCidr: '198.51.100.0/24', vni: 1, vxlanPort: 4789, mtu: 1450, podGateway: '169.254.1.1' },
      namespacePools: {},
      underlay: { netns: `${PREFIX}-ul`, bridge: 'br0' },
      namespaces: [{ name: 'x', labels: { ns: 'x', 'kubernetes.io/metadata.name': 'x' } }, { name: 'y', labels: { ns: 'y', 'kubernetes.io/metadata.name': 'y' } }],
      nodes: [{ name: 'n0', index: 0, labels: {}, netns: node, underlayIp: '192.0.2.10', underlayDev: 'eth0', vxlanDev: 'vxlan0', vtepIp: '10.99.0.0', vtepMac: '02:77:65:69:00:00', podCidr: '10.99.0.0/16' }],
      pods: pods.map((p) => {
        const [ns, name] = p.key.split('/') as [string, string];
        return { key: p.key, namespace: ns, name, labels: { pod: name }, workload: `${p.key}[Pod]`, ip: p.ip, node: 'n0', netns: p.netns, dev: 'eth0', hostVeth: p.veth, ports: [{ name: 'serve-80-tcp', port: 80, protocol: 'TCP' as const }], served: [] };
      }),
      external: { name: 'external', netns: `${PREFIX}-ext`, ip: '198.51.100.2', cidr: '198.51.100.0/24', gateway: '198.51.100.1', node: 'n0', hostVeth: 'wext', served: [] },
    };
    await writeFile(join(dir, 'state.json'), JSON.stringify(state));
    const denyA = ['apiVersion: networking.k8s.io/v1', 'kind: NetworkPolicy', 'metadata: {name: deny-a, namespace: x}', 'spec:', '  podSelector: {matchLabels: {pod: a}}', '  policyTypes: [Ingress]', ''].join('\n');
    await writeFile(join(dir, 'desired.yaml'), denyA);
    // The product's agent process, as `weir lab up` starts it (src/lab/supervisor.ts).
    const weir = join(import.meta.dirname, '..', 'bin', 'weir.js');
    const start = () => spawn(process.execPath, [weir, 'agent', '--lab-dir', dir, '--node', 'n0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const readStatus = async () => JSON.parse(await readFile(join(dir, 'agent-n0.json'), 'utf8').catch(() => '{}')) as { generation?: number; desiredGeneration?: number; lastApplyOk?: boolean; rules?: number };
    const waitFor = async (pred: () => Promise<boolean>, ms: number, what: string) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (await pred()) return;
        await sleep(50);
      }
      assert.fail(`timed out waiting for ${what}`);
    };
    const children: ReturnType<typeof start>[] = [];
    try {
      // Kill the first agent at a random point of its start-up / first apply.
      await run(['ip', 'netns', 'exec', node, 'nft', 'delete', 'table', 'inet', 'weir'], { allowFailure: true });
      const first = start();
      children.push(first);
      await sleep(300 + Math.floor(Math.random() * 900));
      first.kill('SIGKILL');
      await new Promise((r) => first.once('exit', r));
      // Whatever the kill interrupted, the table is all or nothing: never a half-applied ruleset.
      const listed = await run(['ip', 'netns', 'exec', node, 'nft', 'list', 'table', 'inet', 'weir'], { allowFailure: true });
      if (listed.code === 0) assert.match(listed.stdout, /chain forward \{/);

      await rm(join(dir, 'agent-n0.json'), { force: true });
      const second = start();
      children.push(second);
      await waitFor(async () => (await readStatus()).lastApplyOk === true, 15_000, 'the restarted agent to apply');
      let cells = await topo.probeAll([{ protocol: 'TCP', port: 80 }]);
      assert.equal(cells.get('x/b->x/a TCP/80'), false, 'deny-a enforced after restart');
      assert.equal(cells.get('x/a->x/b TCP/80'), true);
      const reasons = JSON.parse(await readFile(join(dir, 'reasons.json'), 'utf8')) as Record<string, { policy: string }>;
      assert.ok(Object.values(reasons).some((r) => r.policy === 'NetworkPolicy x/deny-a'));

      // Live change through the lab dir: enforced within a second, reporting the desired
      // generation (`desired/.generation`, as `weir lab apply` writes it) it was computed from.
      const gen = (await readStatus()).generation ?? 0;
      await mkdir(join(dir, 'desired'), { recursive: true });
      await writeFile(join(dir, 'desired', '.generation'), '7\n');
      const t0 = Date.now();
      await writeFile(join(dir, 'desired.yaml'), '');
      await waitFor(async () => ((await readStatus()).generation ?? 0) > gen, 1000, 'the agent to pick up the change within 1 s');
      const took = Date.now() - t0;
      cells = await topo.probeAll([{ protocol: 'TCP', port: 80 }]);
      assert.equal(cells.get('x/b->x/a TCP/80'), true, `change enforced (${took} ms)`);
      await waitFor(async () => (await readStatus()).desiredGeneration === 7, 2000, 'desiredGeneration 7 in the status');
    } finally {
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      await Promise.all(children.map((c) => (c.exitCode === null && c.signalCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('IPv6 is never a silent allow: forwarded IPv6 between pods is dropped and counted', async () => {
    const rs = await scenario({}, { 'x/b->x/a TCP/80': true });
    const [a, b] = [topo.pods.get('x/a'), topo.pods.get('x/b')];
    assert.ok(a && b);
    await run(['ip', 'netns', 'exec', topo.node, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1']);
    for (const [p, i] of [[a, 1], [b, 2]] as const) {
      await run(['ip', '-n', topo.node, '-6', 'addr', 'add', `fd00:99:${i}::1/64`, 'dev', p.veth, 'nodad']);
      await run(['ip', '-n', p.netns, '-6', 'addr', 'add', `fd00:99:${i}::2/64`, 'dev', 'eth0', 'nodad']);
      await run(['ip', '-n', p.netns, '-6', 'route', 'add', 'default', 'via', `fd00:99:${i}::1`]);
    }
    // No ping here: a TCP connect to a closed port answers 'refused' (RST: reachable) or 'timeout'.
    const knock = async (ns: string, to: string) =>
      (
        await run(['ip', 'netns', 'exec', ns, process.execPath, '-e', `const s=require('net').connect({host:'${to}',port:9,timeout:800});s.on('connect',()=>{console.log('open');s.destroy()});s.on('timeout',()=>{console.log('timeout');s.destroy()});s.on('error',(e)=>console.log(e.code==='ECONNREFUSED'?'refused':e.code))`], { allowFailure: true })
      ).stdout.trim();
    // IPv6 works on the link (to the node itself: no forwarding, not weir's business) …
    assert.equal(await knock(b.netns, 'fd00:99:2::1'), 'refused', 'pod → node over IPv6');
    const id = reasonId(rs, (r) => r.policy === 'weir data plane' && r.rule.startsWith('IPv6'));
    const before = (await counters(topo)).get(id) ?? 0;
    // … but pod → pod IPv6 (forwarded) is dropped, although IPv4 between them is allowed.
    assert.equal(await knock(b.netns, 'fd00:99:1::2'), 'timeout', 'IPv6 pod → pod dropped');
    assert.ok(((await counters(topo)).get(id) ?? 0) > before, 'IPv6 drop counted');
  });

  // What the source chains dropped (inet weir_src): counted under the spoofing reason, recorded by flow.
  const sourceHits = async (id: string): Promise<number> => parseHitCounters(await topo.nft(['-j', 'list', 'set', 'inet', 'weir_src', 'src_hits'])).find((c) => String(c.reasonId) === id)?.packets ?? 0;
  const sourceDenied = async (): Promise<string> => topo.nft(['list', 'set', 'inet', 'weir_src', 'src_denied']);
  const connectFrom = async (ns: string, to: string, from: string) =>
    (
      await run(
        ['ip', 'netns', 'exec', ns, process.execPath, '-e', `const s=require('net').connect({host:'${to}',port:80,localAddress:'${from}',timeout:800});s.on('connect',()=>{console.log('ok');s.destroy()});s.on('timeout',()=>{console.log('timeout');s.destroy()});s.on('error',()=>console.log('error'))`],
        { allowFailure: true },
      )
    ).stdout.trim();
  /** The shared agent's table again, by a full replace (after another agent loaded its own). */
  const reloadShared = async () => {
    agent.close();
    agent = new NodeAgent({ node: 'n0', netns: topo.node });
    const st = await agent.sync(topo.cluster(), topo.localPods());
    assert.ok(st.lastApplyOk, st.error ?? 'apply failed');
  };

  it('anti-spoofing: a packet from a pod interface with another source address is dropped by its veth\'s source chain, counted and recorded', async () => {
    const rs = await scenario({}, { 'x/b->x/a TCP/80': true });
    const [a, b, c] = [topo.pods.get('x/a'), topo.pods.get('x/b'), topo.pods.get('y/a')];
    assert.ok(a && b && c);
    const id = reasonId(rs, (r) => r.policy === 'weir data plane' && r.rule === 'spoofed source address');
    // One source chain per pod veth, in its own table, hooked on the veth's ingress.
    const table = await topo.nft(['list', 'table', 'inet', 'weir_src']);
    for (const p of [a, b, c]) assert.match(table, new RegExp(`chain ${sourceChainName(p.veth)} \\{\\s+type filter hook ingress device "${p.veth}" priority -500; policy accept;\\s+ip saddr != ${p.ip.replace(/\./g, '\\.')} goto spoofed`), `${p.veth}'s source chain`);
    assert.deepEqual((rs.chains.get('forward')?.rules ?? []).filter((r) => r.includes('@pod_src')), [], 'weir\'s forward chain does not check a chained veth again');
    const spoofed = '10.99.2.77';
    await run(['ip', '-n', b.netns, 'addr', 'add', `${spoofed}/32`, 'dev', 'eth0']);
    try {
      const before = await sourceHits(id);
      assert.equal(await connectFrom(b.netns, a.ip, b.ip), 'ok', 'the pod\'s own address passes');
      assert.equal(await sourceHits(id), before, 'nothing of it counted as forged');
      assert.equal(await connectFrom(b.netns, a.ip, spoofed), 'timeout', 'a forged source is dropped');
      assert.ok((await sourceHits(id)) > before, 'counted under the spoofing reason');
      assert.match(await sourceDenied(), new RegExp(`10\\.99\\.2\\.77 \\. ${a.ip.replace(/\./g, '\\.')} \\. tcp \\. 80 \\. 0x${Number(id).toString(16).padStart(8, '0')}`), 'recorded as a denied flow');
    } finally {
      await run(['ip', '-n', b.netns, 'addr', 'del', `${spoofed}/32`, 'dev', 'eth0'], { allowFailure: true });
    }
  });

  it('anti-spoofing without source chains (the reverse-path filter\'s mode): a forged new connection is dropped, counted and recorded by weir', async () => {
    const rs = await scenario({}, { 'x/b->x/a TCP/80': true });
    const [a, b] = [topo.pods.get('x/a'), topo.pods.get('x/b')];
    assert.ok(a && b);
    const rp = new NodeAgent({ node: 'n0', netns: topo.node, sourceChains: false });
    const spoofed = '10.99.2.77';
    await run(['ip', '-n', b.netns, 'addr', 'add', `${spoofed}/32`, 'dev', 'eth0']);
    try {
      const st = await rp.sync(topo.cluster(), topo.localPods());
      assert.ok(st.lastApplyOk, st.error ?? 'apply failed');
      assert.equal((await run(['ip', 'netns', 'exec', topo.node, 'nft', 'list', 'tables'])).stdout.includes('weir_src'), false, 'no source chains table');
      const id = reasonId(rs, (r) => r.policy === 'weir data plane' && r.rule === 'spoofed source address');
      const before = (await counters(topo)).get(id) ?? 0;
      assert.equal(await connectFrom(b.netns, a.ip, b.ip), 'ok', 'the pod\'s own address passes');
      // In b's /24: the reverse-path filter lets it through, weir's rule drops it.
      assert.equal(await connectFrom(b.netns, a.ip, spoofed), 'timeout', 'a forged source is dropped');
      assert.ok(((await counters(topo)).get(id) ?? 0) > before, 'spoofing counted');
      const denied = await topo.nft(['list', 'set', 'inet', 'weir', 'denied']);
      assert.match(denied, new RegExp(`10\\.99\\.2\\.77 \\. ${a.ip.replace(/\./g, '\\.')} \\. tcp \\. 80 \\. 0x${Number(id).toString(16).padStart(8, '0')}`));
    } finally {
      rp.close();
      await run(['ip', '-n', b.netns, 'addr', 'del', `${spoofed}/32`, 'dev', 'eth0'], { allowFailure: true });
      await reloadShared();
    }
  });

  // a echoes every datagram on 9181 (so that b's flow is established both ways) and prints it;
  // `send` sends one from b's address and port 40000, the same 5-tuple from whichever pod.
  const udpFlow = (a: TopoPod, b: TopoPod) => {
    const echo = spawn('ip', ['netns', 'exec', a.netns, process.execPath, '-e', `const d=require('dgram').createSocket('udp4');d.on('message',(m,r)=>{console.log(m.toString());d.send('ack',r.port,r.address)});d.bind(9181,()=>console.log('ready'))`], { stdio: ['ignore', 'pipe', 'ignore'] });
    const state = { heard: '' };
    echo.stdout.on('data', (d: Buffer) => (state.heard += d.toString()));
    const send = async (ns: string, text: string) =>
      (
        await run(['ip', 'netns', 'exec', ns, process.execPath, '-e', `const d=require('dgram').createSocket('udp4');const t=setTimeout(()=>{console.log('timeout');d.close()},600);d.on('message',()=>{clearTimeout(t);console.log('ack');d.close()});d.bind({address:'${b.ip}',port:40000},()=>d.send('${text}',9181,'${a.ip}'))`], { allowFailure: true })
      ).stdout.trim();
    const ready = async () => {
      for (let i = 0; i < 50 && !state.heard.includes('ready'); i++) await sleep(20);
    };
    return { echo, state, send, ready };
  };

  it('anti-spoofing of established flows: the source chain drops a forged packet riding another pod\'s flow', async () => {
    const rs = await scenario({}, { 'x/b->x/a UDP/81': true });
    const [a, b, c] = [topo.pods.get('x/a'), topo.pods.get('x/b'), topo.pods.get('y/a')];
    assert.ok(a && b && c);
    assert.deepEqual((rs.chains.get('forward')?.rules ?? []).filter((r) => r.includes('@pod_src')), [], 'the source chains alone check anti-spoofing');
    const flow = udpFlow(a, b);
    // The kernel's reverse-path filter off on c's veth (an agent with source chains leaves it as
    // it finds it; the test before may have turned it on): the chain alone is the check.
    const cVeth = `/proc/sys/net/ipv4/conf/${c.veth}/rp_filter`;
    const rpWas = (await run(['ip', 'netns', 'exec', topo.node, 'cat', cVeth])).stdout.trim();
    await run(['ip', 'netns', 'exec', topo.node, 'sh', '-c', `echo 0 > ${cVeth}`]);
    // c holds b's address too, and sends from b's address and port: the same 5-tuple as b's flow.
    await run(['ip', '-n', c.netns, 'addr', 'add', `${b.ip}/32`, 'dev', 'eth0']);
    try {
      await flow.ready();
      assert.equal(await flow.send(b.netns, 'legit-1'), 'ack', 'b\'s flow is answered');
      const id = reasonId(rs, (r) => r.policy === 'weir data plane' && r.rule === 'spoofed source address');
      const before = await sourceHits(id);
      assert.equal(await flow.send(c.netns, 'forged-1'), 'timeout');
      assert.ok((await sourceHits(id)) > before, 'the forged packet counted');
      assert.match(await sourceDenied(), new RegExp(`${b.ip.replace(/\./g, '\\.')} \\. ${a.ip.replace(/\./g, '\\.')} \\. udp \\. 9181 \\.`), 'and recorded');
      // Control: without c's source chain the forged packet is part of b's established flow and
      // passes weir's rules, which no longer look at established packets. The chain is the check.
      await topo.nft(['flush', 'chain', 'inet', 'weir_src', sourceChainName(c.veth)]);
      await flow.send(c.netns, 'forged-2');
      await reloadShared();
      assert.equal(await flow.send(c.netns, 'forged-3'), 'timeout');
      assert.equal(await flow.send(b.netns, 'legit-2'), 'ack');
      assert.match(flow.state.heard, /legit-1/);
      assert.match(flow.state.heard, /legit-2/);
      assert.doesNotMatch(flow.state.heard, /forged-[13]/, 'a forged packet riding b\'s flow is dropped');
      assert.match(flow.state.heard, /forged-2/, 'control: without the chain the forged packet would ride the flow');
    } finally {
      flow.echo.kill();
      await run(['ip', 'netns', 'exec', topo.node, 'sh', '-c', `echo ${rpWas} > ${cVeth}`], { allowFailure: true });
      await run(['ip', '-n', c.netns, 'addr', 'del', `${b.ip}/32`, 'dev', 'eth0'], { allowFailure: true });
    }
  });

  it('anti-spoofing of established flows without source chains: the kernel\'s strict reverse-path filter drops a forged packet riding another pod\'s flow', async () => {
    await scenario({}, { 'x/b->x/a UDP/81': true });
    const [a, b, c] = [topo.pods.get('x/a'), topo.pods.get('x/b'), topo.pods.get('y/a')];
    assert.ok(a && b && c);
    const rp = new NodeAgent({ node: 'n0', netns: topo.node, sourceChains: false });
    const flow = udpFlow(a, b);
    const cVeth = `/proc/sys/net/ipv4/conf/${c.veth}/rp_filter`;
    // The kernel's count of packets its reverse-path filter dropped (TcpExt IPReversePathFilter).
    const rpDrops = async () => {
      const lines = (await run(['ip', 'netns', 'exec', topo.node, 'cat', '/proc/net/netstat'])).stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
      const [names, values] = lines.map((l) => l.split(/\s+/));
      return Number(values?.[names?.indexOf('IPReversePathFilter') ?? -1]);
    };
    await run(['ip', '-n', c.netns, 'addr', 'add', `${b.ip}/32`, 'dev', 'eth0']);
    try {
      const st = await rp.sync(topo.cluster(), topo.localPods());
      assert.ok(st.lastApplyOk && rp.lastRuleset, st.error ?? 'apply failed');
      // The agent turned the filter on for every pod veth, so its own rule sees new connections only.
      for (const p of [a, b, c]) assert.equal((await run(['ip', 'netns', 'exec', topo.node, 'cat', `/proc/sys/net/ipv4/conf/${p.veth}/rp_filter`])).stdout.trim(), '1', `rp_filter on ${p.veth}`);
      assert.equal(spoofCheckedPerPacket(rp.lastRuleset), false, 'anti-spoofing rule behind the conntrack shortcut');
      const forward = await topo.nft(['list', 'chain', 'inet', 'weir', 'forward']);
      assert.ok(forward.indexOf('@pod_src') > forward.indexOf('ct state established,related accept'), forward);
      await flow.ready();
      assert.equal(await flow.send(b.netns, 'legit-1'), 'ack', 'b\'s flow is answered');
      const before = await rpDrops();
      assert.equal(await flow.send(c.netns, 'forged-1'), 'timeout');
      assert.ok((await rpDrops()) > before, 'the kernel counted the forged packet');
      // Control: without the filter the forged packet rides b's established flow.
      await run(['ip', 'netns', 'exec', topo.node, 'sh', '-c', `echo 0 > ${cVeth}`]);
      await flow.send(c.netns, 'forged-2');
      // The agent's interface check (every 250 ms in `weir agent`) sees it and turns it on again.
      assert.equal(rp.interfacesChanged(), true, 'a filter turned off is noticed');
      assert.ok(await rp.refreshInterfaces());
      assert.equal((await run(['ip', 'netns', 'exec', topo.node, 'cat', cVeth])).stdout.trim(), '1');
      assert.equal(rp.interfacesChanged(), false);
      assert.equal(await flow.send(c.netns, 'forged-3'), 'timeout');
      assert.equal(await flow.send(b.netns, 'legit-2'), 'ack');
      assert.doesNotMatch(flow.state.heard, /forged-[13]/, 'a forged packet riding b\'s flow is dropped');
      assert.match(flow.state.heard, /forged-2/, 'control: without the filter the forged packet would ride the flow');
    } finally {
      flow.echo.kill();
      rp.close();
      await run(['ip', 'netns', 'exec', topo.node, 'sh', '-c', `echo 1 > ${cVeth}`], { allowFailure: true });
      await run(['ip', '-n', c.netns, 'addr', 'del', `${b.ip}/32`, 'dev', 'eth0'], { allowFailure: true });
      await reloadShared();
    }
  });

  it('anti-spoofing without the kernel\'s filter (all.rp_filter 2, loose): checked on every packet in nftables', async () => {
    const all = '/proc/sys/net/ipv4/conf/all/rp_filter';
    await run(['ip', 'netns', 'exec', topo.node, 'sh', '-c', `echo 2 > ${all}`]);
    try {
      const loose = new NodeAgent({ node: 'n0', netns: topo.node, sourceChains: false });
      const status = await loose.sync(topo.cluster(), topo.localPods());
      assert.ok(status.lastApplyOk, status.error ?? 'apply failed');
      assert.ok(loose.lastRuleset && spoofCheckedPerPacket(loose.lastRuleset), 'anti-spoofing before the conntrack shortcut');
      const forward = await topo.nft(['list', 'chain', 'inet', 'weir', 'forward']);
      assert.ok(forward.indexOf('@pod_src') < forward.indexOf('ct state established,related accept'), forward);
    } finally {
      await run(['ip', 'netns', 'exec', topo.node, 'sh', '-c', `echo 0 > ${all}`]);
      await reloadShared();
    }
  });

  it('fail closed: a pod interface the agent has not synced yet passes nothing, until it is synced', async () => {
    const closed = new NodeAgent({ node: 'n0', netns: topo.node, podInterfaces: 'wv*' });
    const c = topo.cluster();
    // x/b's veth exists (its pod is running) but the agent has not seen it yet.
    const known = topo.localPods().filter((p) => p.key !== 'x/b');
    const st = await closed.sync(c, known);
    assert.ok(st.lastApplyOk, st.error ?? 'apply failed');
    assert.ok(closed.lastRuleset, 'applied');
    const id = reasonId(closed.lastRuleset, (r) => r.policy === 'weir data plane' && r.rule === 'endpoint not yet enforced');
    const before = (await counters(topo)).get(id) ?? 0;
    const seen = await topo.probeAll([{ protocol: 'TCP', port: 80 }]);
    assert.equal(seen.get('x/b->x/a TCP/80'), false, 'nothing leaves a pod that is not enforced yet');
    assert.equal(seen.get('x/a->x/b TCP/80'), false, 'nothing reaches it either');
    assert.equal(seen.get('x/a->y/a TCP/80'), true, 'known pods are unaffected');
    assert.ok(((await counters(topo)).get(id) ?? 0) > before, 'counted as not yet enforced');
    const synced = await closed.sync(c, topo.localPods());
    assert.ok(synced.lastApplyOk, synced.error ?? 'apply failed');
    const after = await topo.probeAll([{ protocol: 'TCP', port: 80 }]);
    assert.equal(after.get('x/b->x/a TCP/80'), true, 'enforced (no policy): reachable once synced');
    assert.equal(after.get('x/a->x/b TCP/80'), true, 'and reachable');
    // This second agent wrote the namespace's table (with its wildcard guards and pod_guard
    // chain): the suite's agent replaces it in full next, instead of diffing from its own last.
    closed.applier.close();
    agent.applier.reset();
  });

  it('pod events reach the kernel as element commands (podAdded → listed element → podRemoved)', async () => {
    await scenario({ networkPolicies: [genPolicyMatchLabels('x', 'deny-a', { pod: 'a' }, setSpecIngressRules())] }, {});
    const base = topo.cluster().pods.find((p) => p.name === 'a' && p.namespace === 'x');
    assert.ok(base);
    const pod: Pod = { ...base, name: 'a-extra', ip: '10.99.1.99' };
    const t0 = performance.now();
    const st = await agent.podAdded(pod, { key: 'x/a-extra', ip: pod.ip, hostVeth: topo.pods.get('x/a')?.veth });
    const ms = performance.now() - t0;
    assert.ok(st.lastApplyOk, st.error ?? '');
    assert.equal(st.mode, 'partial', `element-only (${ms.toFixed(1)} ms)`);
    const mark = /10\.99\.1\.99 : (0x[0-9a-f]{8})/.exec(await topo.nft(['get', 'element', 'inet', 'weir', 'in_pod', '{ 10.99.1.99 }']))?.[1];
    assert.ok(mark, 'the pod → identity element is in the kernel');
    assert.match(await topo.nft(['list', 'map', 'inet', 'weir', 'in_id']), new RegExp(`${mark} : jump in_x_a_`), 'its identity maps to its chain');
    assert.match(await topo.nft(['list', 'set', 'inet', 'weir', 'pod_src']), /"wv1" \. 10\.99\.1\.99/);
    const gone = await agent.podRemoved('x', 'a-extra');
    assert.ok(gone.lastApplyOk && gone.mode === 'partial', gone.error ?? '');
    assert.doesNotMatch(await topo.nft(['list', 'map', 'inet', 'weir', 'in_pod']), /10\.99\.1\.99/);
  });

  it('pod set: the rendered table in the kernel matches the model (chains, sets, element counts)', async () => {
    const c = topo.cluster({ networkPolicies: [genPolicyMatchLabels('x', 'allow-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })])))] });
    await agent.sync(c, topo.localPods());
    // The source chains in their own table, the rest in `weir`.
    const listed = async (table: string) => (JSON.parse(await topo.nft(['-j', 'list', 'table', 'inet', table])) as { nftables: Record<string, { name?: string }>[] }).nftables.filter((o) => 'chain' in o).map((o) => o.chain?.name);
    const chains = [...(await listed('weir')), ...(await listed('weir_src'))].sort();
    assert.deepEqual(chains, [...(agent.lastRuleset?.chains.keys() ?? [])].sort());
    assert.equal((await listed('weir_src')).filter((n) => n !== 'spoofed').length, topo.localPods().length, 'one source chain per local pod, and `spoofed`');
  });
});

