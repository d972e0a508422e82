// The filter's dispatch (pure, no root): one base chain on the forward hook, the conntrack
// shortcut right after the guards, egress allows continuing to the ingress stage, identity
// chains jumped to; anti-spoofing with and without the lab's pod-interface wildcard, behind the
// conntrack shortcut where the kernel's reverse-path filter checks every local veth, and pod
// adds that need the rule elsewhere (a veth the wildcard or the kernel misses) rendering in full.
// The kernel half (real packets through these chains) is test/nft.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NodeAgent } from '../src/agent/agent.js';
import { interfaceIndexes, interfaceIndexesByIp } from '../src/nft/index.js';
import { PolicyEngine } from '../src/policy/index.js';
import { fullScript, renderRuleset, sourceChainName, spoofCheckedPerPacket, type LocalPod, type Ruleset } from '../src/render/index.js';
import { e2eModel, modelPod } from './helpers/model.js';
import { genPolicyMatchLabels, podPeer, port, rule, setSpecEgressRules, setSpecIngressRules } from './helpers/scenarios.js';

const cluster = e2eModel([
  genPolicyMatchLabels('x', 'in-a', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })], [port(80)]))),
  genPolicyMatchLabels('x', 'out-b', { pod: 'b' }, setSpecEgressRules(rule([podPeer({ matchLabels: { pod: 'a' } })], [port(80)]))),
]);
const locals = (veth: (name: string) => string): LocalPod[] => cluster.pods.filter((p) => p.namespace === 'x').map((p) => ({ key: `x/${p.name}`, hostVeth: veth(p.name) }));
const render = (podInterfaces: string | undefined, veth: (name: string) => string = (n) => `wp-x-${n}`, withServices = false): Ruleset =>
  renderRuleset({ engine: new PolicyEngine(cluster), localPods: locals(veth), ...(podInterfaces ? { podInterfaces } : {}), ...(withServices ? { services: { services: [], node: 'n1', nodeIps: ['192.168.0.1'] } } : {}) });

test('one base chain: guards, the conntrack shortcut, the egress dispatch, then the ingress stage inline', () => {
  const rs = render('wp*');
  const hooked = [...rs.chains.values()].filter((c) => c.hook);
  assert.deepEqual(hooked.map((c) => `${c.name}: ${c.hook}`), ['forward: type filter hook forward priority filter; policy accept;']);
  const fwd = rs.chains.get('forward')?.rules ?? [];
  const est = fwd.indexOf('ct state established,related accept');
  assert.ok(est > 0, 'the shortcut is there');
  assert.ok(fwd.slice(0, est).every((r) => / (drop|goto (deny|pod_guard))$/.test(r)), `only guards before the shortcut: ${fwd.slice(0, est).join(' | ')}`);
  // IPv6 after the shortcut: established packets (all but a connection's first) do not pay for it.
  assert.deepEqual(fwd.slice(est + 1).map((r) => r.replace(/\d+/g, 'N')), [
    'ct state invalid drop',
    'meta nfproto ipvN update @hits { N counter } drop',
    'ct mark set ip saddr map @eg_pod ct mark vmap @eg_id',
    // The ingress stage inline: a new connection pays neither a `goto ingress` nor the chain.
    'ct mark set ip daddr map @in_pod ct mark vmap @in_id',
    // Untracked packets found no program above (no ct mark): checked last, where only they get.
    'ct state untracked goto untracked',
    'accept',
  ]);
  assert.deepEqual(rs.chains.get('untracked')?.rules, ['ip saddr @eg_pod drop', 'ip daddr @in_pod drop']);
  // No Service on the node, so nothing is masqueraded: no accepts for it, no postrouting chain.
  assert.deepEqual(rs.chains.get('ingress')?.rules, ['ct mark set ip daddr map @in_pod ct mark vmap @in_id', 'accept']);
  // Identity chains are jumped to: falling off one comes back to the stage that dispatched it.
  for (const map of ['eg_id', 'in_id']) {
    const els = rs.sets.get(map)?.elements ?? [];
    assert.ok(els.length > 0 && els.every((e) => / : jump (eg|in)_/.test(e)), `${map}: ${els.join(', ')}`);
  }
  // An egress allow goes on to the destination's ingress program; an ingress allow accepts.
  const egress = [...rs.chains.values()].filter((c) => c.name.startsWith('eg_')).flatMap((c) => c.rules);
  const ingress = [...rs.chains.values()].filter((c) => c.name.startsWith('in_')).flatMap((c) => c.rules);
  assert.ok(egress.some((r) => / tcp dport 80 update @hits \{ \d+ counter \} goto ingress$/.test(r)), egress.join('\n'));
  assert.ok(egress.every((r) => !r.endsWith(' accept')), 'no egress rule accepts: the ingress stage would be skipped');
  assert.ok(ingress.some((r) => / tcp dport 80 update @hits \{ \d+ counter \} accept$/.test(r)), ingress.join('\n'));
  assert.doesNotThrow(() => fullScript(rs));
});

test('one pod map per direction: a pod is in eg_pod when its identity has an egress program, in in_pod when it has an ingress one', async () => {
  const rs = render(undefined);
  const ip = (name: string): string => cluster.pods.find((p) => p.namespace === 'x' && p.name === name)?.ip ?? '';
  const keys = (map: string): string[] => (rs.sets.get(map)?.elements ?? []).map((e) => e.split(' : ')[0]);
  // x/a is isolated for ingress only, x/b for egress only, x/c for neither.
  assert.deepEqual(keys('eg_pod'), [ip('b')]);
  assert.deepEqual(keys('in_pod'), [ip('a')]);
  assert.equal(rs.sets.has('pod_id'), false);
  // Both identity maps and both pod maps are fixed-size hashes (the resizable one is slower).
  for (const map of ['eg_id', 'in_id', 'eg_pod', 'in_pod']) assert.ok(rs.sets.get(map)?.extra.includes('size 65536'), map);
  // A replica added is patched into its identity's directions only.
  const scripts: string[] = [];
  const agent = new NodeAgent({ node: 'n1', runner: (s) => (scripts.push(s), Promise.resolve({ ok: true, stderr: '' })), netlinkElements: false });
  await agent.sync(cluster, locals((n) => `v-${n}`));
  const st = await agent.podAdded({ ...modelPod('x', 'b'), name: 'b2', ip: '10.1.0.60' }, { key: 'x/b2', ip: '10.1.0.60' });
  assert.equal(st.mode, 'partial');
  const last = scripts.at(-1) ?? '';
  assert.match(last, /add element inet weir eg_pod \{ 10\.1\.0\.60 : 0x[89a-f][0-9a-f]{7} \}/);
  assert.doesNotMatch(last, /in_pod/);
  assert.deepEqual(agent.lastRuleset?.sets.get('eg_pod')?.elements.map((e) => e.split(' : ')[0]).sort(), ['10.1.0.60', ip('b')].sort());
});

test('with Services on the node, masqueraded connections have their ingress judged after SNAT, in a postrouting chain', () => {
  const rs = render('wp*', undefined, true);
  const hooked = [...rs.chains.values()].filter((c) => c.hook && !c.name.startsWith('svc_'));
  assert.deepEqual(hooked.map((c) => `${c.name}: ${c.hook}`), ['forward: type filter hook forward priority filter; policy accept;', 'ingress_snat: type filter hook postrouting priority srcnat + 10; policy accept;']);
  assert.deepEqual(rs.chains.get('ingress_snat')?.rules, ['ct state new ct status snat ct mark set ip daddr map @in_pod ct mark vmap @in_id']);
  // They skip the ingress stage of the forward hook.
  assert.deepEqual(rs.chains.get('ingress')?.rules, ['meta mark & 0x00004000 == 0x00004000 accept', 'ct status snat accept', 'ct mark set ip daddr map @in_pod ct mark vmap @in_id', 'accept']);
  // Inline in the base chain too, with the untracked check before the masquerade accepts.
  const fwd = rs.chains.get('forward')?.rules ?? [];
  assert.deepEqual(fwd.slice(fwd.indexOf('ct state untracked goto untracked')), [
    'ct state untracked goto untracked',
    'ct mark set ip saddr map @eg_pod ct mark vmap @eg_id',
    'meta mark & 0x00004000 == 0x00004000 accept',
    'ct status snat accept',
    'ct mark set ip daddr map @in_pod ct mark vmap @in_id',
    'accept',
  ]);
  assert.doesNotThrow(() => fullScript(rs));
});

test('anti-spoofing: one lookup per pod packet with the wildcard, the per-packet pod_ifs rule without it or for a veth it misses', () => {
  const guards = (rs: Ruleset): string[] => (rs.chains.get('forward')?.rules ?? []).filter((r) => /@pod_(src|ifs)/.test(r));
  const withWildcard = render('wp*');
  assert.deepEqual(guards(withWildcard).map((r) => r.replace(/\d+/g, 'N')), [
    'iifname "wp*" iif . ip saddr != @pod_src goto pod_guard',
    'oifname "wp*" oif != @pod_ifs meta mark set N goto deny',
  ]);
  assert.deepEqual(withWildcard.chains.get('pod_guard')?.rules.map((r) => r.replace(/\d+/g, 'N')), ['iif != @pod_ifs meta mark set N goto deny', 'meta mark set N goto deny']);
  const without = render(undefined);
  assert.deepEqual(guards(without).map((r) => r.replace(/\d+/g, 'N')), ['iif @pod_ifs iif . ip saddr != @pod_src meta mark set N goto deny']);
  assert.equal(without.chains.has('pod_guard'), false);
  // A pod veth outside the wildcard still gets the per-packet check: never fail open.
  const odd = render('wp*', (n) => (n === 'c' ? 'other-c' : `wp-x-${n}`));
  assert.ok(guards(odd).some((r) => r.startsWith('iif @pod_ifs iif . ip saddr != @pod_src')), guards(odd).join('\n'));
  // The sets every pod add changes are declared before the others (the kernel finds sets by a walk).
  const decl = fullScript(withWildcard).split('\n').filter((l) => /^ {2}(set|map) /.test(l)).map((l) => l.trim().split(' ')[1]);
  const firstStatic = decl.findIndex((n) => n !== 'hits' && n !== 'denied');
  assert.deepEqual(decl.slice(firstStatic, firstStatic + 4).sort(), ['eg_pod', 'in_pod', 'pod_ifs', 'pod_src']);
});

test('anti-spoofing behind the conntrack shortcut only when the kernel checks every local veth (strict rp_filter)', () => {
  const indexed = (checked: (name: string) => boolean): LocalPod[] => locals((n) => `v-${n}`).map((p, i) => ({ ...p, hostVethIndex: 10 + i, hostVethSourceChecked: checked(p.key) }));
  const forward = (localPods: LocalPod[]): Ruleset => renderRuleset({ engine: new PolicyEngine(cluster), localPods });
  const all = forward(indexed(() => true));
  const fwd = all.chains.get('forward')?.rules.map((r) => r.replace(/\d+/g, 'N')) ?? [];
  assert.deepEqual(fwd.slice(0, 5), [
    'ct state established,related accept',
    'ct state invalid drop',
    'meta nfproto ipvN update @hits { N counter } drop',
    'iif @pod_ifs iif . ip saddr != @pod_src meta mark set N goto deny',
    'ct mark set ip saddr map @eg_pod ct mark vmap @eg_id',
  ]);
  assert.equal(spoofCheckedPerPacket(all), false);
  // One veth the kernel does not check: every packet is checked by the rule, as before.
  const one = forward(indexed((key) => key !== 'x/b'));
  assert.equal(one.chains.get('forward')?.rules[0]?.startsWith('iif @pod_ifs iif . ip saddr != @pod_src'), true, (one.chains.get('forward')?.rules ?? []).join('\n'));
  assert.equal(spoofCheckedPerPacket(one), true);
  // Same elements either way: only the rule's place differs.
  assert.deepEqual(one.sets.get('pod_src')?.elements, all.sets.get('pod_src')?.elements);
  // The wildcard's guard checks every packet whatever the kernel does (it also fails closed).
  const wild = renderRuleset({ engine: new PolicyEngine(cluster), localPods: indexed(() => true).map((p) => ({ ...p, hostVeth: `wp-${p.key.slice(2)}` })), podInterfaces: 'wp*' });
  assert.ok((wild.chains.get('forward')?.rules ?? []).indexOf('iifname "wp*" iif . ip saddr != @pod_src goto pod_guard') < (wild.chains.get('forward')?.rules ?? []).indexOf('ct state established,related accept'));
});

test('source chains: one per local veth in weir_src, no forward-chain source check for a chained veth; a shared veth gets none; a pod add or remove patches its chain', async () => {
  const indexed = (veth: (name: string) => string): LocalPod[] => locals(veth).map((p, i) => ({ ...p, hostVethIndex: 10 + i }));
  const engine = new PolicyEngine(cluster);
  const rs = renderRuleset({ engine, localPods: indexed((n) => `v-${n}`), sourceChains: true });
  const ipOf = (name: string) => cluster.pods.find((p) => p.namespace === 'x' && p.name === name)?.ip as string;
  const sources = [...rs.chains.values()].filter((c) => c.table === 'src' && c.hook);
  assert.deepEqual(
    sources.map((c) => [c.name, c.hook, c.rules]),
    locals((n) => `v-${n}`).map((p) => {
      const name = p.key.slice(2);
      return [sourceChainName(`v-${name}`), `type filter hook ingress device "v-${name}" priority -500; policy accept;`, [`ip saddr != ${ipOf(name)} goto spoofed`]];
    }),
  );
  assert.deepEqual(rs.chains.get('spoofed')?.rules.map((r) => r.replace(/\d+/g, 'N')), ['update @src_hits { N counter }', 'meta lNproto { tcp, udp, sctp } update @src_denied { ip saddr . ip daddr . meta lNproto . th dport . N } drop', 'update @src_denied { ip saddr . ip daddr . meta lNproto . N . N } drop']);
  // Every veth chained: its chain checks new connections too, so the forward chain has no
  // anti-spoofing rule and the sets it would look up hold nothing.
  const sourceCheck = (x: typeof rs): string[] => (x.chains.get('forward')?.rules ?? []).filter((r) => r.includes('@pod_src'));
  assert.deepEqual(sourceCheck(rs), []);
  assert.deepEqual(rs.sets.get('pod_src')?.elements, []);
  assert.deepEqual(rs.sets.get('pod_ifs')?.elements, []);
  // In their own table, replaced with weir's in one script.
  const script = fullScript(rs);
  assert.match(script, /\nadd table inet weir_src\ndelete table inet weir_src\ntable inet weir_src \{\n {2}set src_(denied|hits)/);
  assert.ok(script.indexOf(`chain ${sourceChainName('v-a')} {`) > script.indexOf('table inet weir_src {'));
  // Two pods on one veth: neither gets a chain, and the rule checks every packet again.
  const shared = renderRuleset({ engine, localPods: indexed((n) => (n === 'c' ? 'v-b' : `v-${n}`)), sourceChains: true });
  assert.equal(shared.chains.has(sourceChainName('v-b')), false);
  assert.equal(shared.chains.has(sourceChainName('v-a')), true);
  assert.equal(spoofCheckedPerPacket(shared), true);
  assert.equal(sourceCheck(shared).length, 1, 'the rule, for the shared veth');
  assert.deepEqual(shared.sets.get('pod_src')?.elements, [`11 . ${ipOf('b')}`, `12 . ${ipOf('c')}`], 'the shared veth\'s pods only');
  // A veth name nft cannot quote or the kernel cannot hold: no chain (never a broken script),
  // and the rule checks every packet again.
  for (const bad of ['v"a', 'v\\a', 'v a', 'a-name-of-16-byt']) {
    const odd = renderRuleset({ engine, localPods: indexed((n) => (n === 'a' ? bad : `v-${n}`)), sourceChains: true });
    assert.equal(odd.chains.has(sourceChainName(bad)), false, bad);
    assert.equal(odd.chains.has(sourceChainName('v-b')), true);
    assert.equal(spoofCheckedPerPacket(odd), true, bad);
    assert.doesNotThrow(() => fullScript(odd));
  }
  // With the wildcard (its guard checks every packet) or without the option: no source objects.
  for (const other of [renderRuleset({ engine, localPods: indexed((n) => `wp-${n}`), sourceChains: true, podInterfaces: 'wp*' }), renderRuleset({ engine, localPods: indexed((n) => `v-${n}`) })]) {
    assert.deepEqual([...other.chains.values()].filter((c) => c.table === 'src'), []);
    assert.deepEqual([...other.sets.values()].filter((x) => x.table === 'src'), []);
    assert.match(fullScript(other), /\nadd table inet weir_src\ndelete table inet weir_src\n$/, 'a stale source table is removed');
  }
  // The agent: a pod add brings its chain as a patch (no render), a remove takes it; the model
  // equals a fresh render each time.
  const scripts: string[] = [];
  const agent = new NodeAgent({ node: 'n1', runner: (x) => (scripts.push(x), Promise.resolve({ ok: true, stderr: '' })), netlinkElements: false, sourceChains: true });
  await agent.sync(cluster, indexed((n) => `v-${n}`));
  const replica = { ...modelPod('x', 'a'), name: 'a2', ip: '10.1.0.50' };
  const local: LocalPod = { key: 'x/a2', ip: '10.1.0.50', hostVeth: 'v-a2', hostVethIndex: 40 };
  const added = await agent.podAdded(replica, local);
  assert.equal(added.mode, 'partial');
  assert.equal(added.rendered, false, 'patched, not rendered');
  assert.deepEqual(scripts.at(-1)?.split('\n').filter((l) => l.includes('weir_src')), ['add table inet weir_src', `add chain inet weir_src ${sourceChainName('v-a2')} { type filter hook ingress device "v-a2" priority -500; policy accept; }`, `add rule inet weir_src ${sourceChainName('v-a2')} ip saddr != 10.1.0.50 goto spoofed`]);
  assert.equal(scripts.at(-1)?.includes('pod_src'), false, 'no anti-spoofing element for a chained veth');
  const fresh = renderRuleset({ engine: agent.engine, localPods: [...indexed((n) => `v-${n}`), local], sourceChains: true });
  assert.equal(agent.lastRuleset && fullScript(agent.lastRuleset), fullScript(fresh));
  const removed = await agent.podRemoved('x', 'a2');
  assert.equal(removed.rendered, false);
  assert.deepEqual(scripts.at(-1)?.split('\n').filter((l) => l.includes('weir_src')), [`delete chain inet weir_src ${sourceChainName('v-a2')}`]);
  assert.equal(agent.lastRuleset?.chains.has(sourceChainName('v-a2')), false);
  // A pod on a veth the kernel cannot hook: rendered, and the forward chain's rule comes back for it alone.
  const odd = await agent.podAdded({ ...replica, name: 'a4', ip: '10.1.0.52' }, { key: 'x/a4', ip: '10.1.0.52', hostVeth: 'a-name-of-16-byt', hostVethIndex: 44 });
  assert.equal(odd.rendered, true);
  assert.deepEqual(agent.lastRuleset?.sets.get('pod_src')?.elements, ['44 . 10.1.0.52']);
  assert.equal(agent.lastRuleset && sourceCheck(agent.lastRuleset).length, 1);
  const oddGone = await agent.podRemoved('x', 'a4');
  assert.equal(oddGone.rendered, true, 'and goes with it (a render)');
  assert.equal(agent.lastRuleset && sourceCheck(agent.lastRuleset).length, 0);
  // A pod on a veth another local pod has: rendered (neither keeps a chain).
  const twin = await agent.podAdded({ ...replica, name: 'a3', ip: '10.1.0.51' }, { key: 'x/a3', ip: '10.1.0.51', hostVeth: 'v-a', hostVethIndex: 10 });
  assert.equal(twin.rendered, true);
  assert.equal(agent.lastRuleset?.chains.has(sourceChainName('v-a')), false);
  assert.equal(agent.lastRuleset && spoofCheckedPerPacket(agent.lastRuleset), true);
});

test('a pod add whose veth the kernel does not check, on a node where the rule sees new connections only, renders in full', async () => {
  const agent = new NodeAgent({ node: 'n1', runner: () => Promise.resolve({ ok: true, stderr: '' }), netlinkElements: false });
  await agent.sync(cluster, locals((n) => `v-${n}`).map((p, i) => ({ ...p, hostVethIndex: 10 + i, hostVethSourceChecked: true })));
  assert.equal(agent.lastRuleset && spoofCheckedPerPacket(agent.lastRuleset), false);
  const replica = (name: string, ip: string) => ({ ...modelPod('x', 'a'), name, ip });
  const checked = await agent.podAdded(replica('a2', '10.1.0.50'), { key: 'x/a2', ip: '10.1.0.50', hostVeth: 'v-a2', hostVethIndex: 40, hostVethSourceChecked: true });
  assert.equal(checked.mode, 'partial', 'a checked veth: elements only');
  const unchecked = await agent.podAdded(replica('a3', '10.1.0.51'), { key: 'x/a3', ip: '10.1.0.51', hostVeth: 'v-a3', hostVethIndex: 41, hostVethSourceChecked: false });
  assert.equal(unchecked.lastApplyOk, true);
  assert.equal(unchecked.rendered, true, 'not patched in');
  assert.equal(agent.lastRuleset && spoofCheckedPerPacket(agent.lastRuleset), true, 'the render moved the rule before the shortcut');
  assert.ok(agent.lastRuleset?.sets.get('pod_src')?.elements.includes('41 . 10.1.0.51'));
});

test('a pod add through a veth the wildcard does not cover renders in full (it needs the per-packet rule)', async () => {
  const scripts: string[] = [];
  const agent = new NodeAgent({ node: 'n1', runner: (s) => (scripts.push(s), Promise.resolve({ ok: true, stderr: '' })), netlinkElements: false, podInterfaces: 'wp*' });
  await agent.sync(cluster, locals((n) => `wp-x-${n}`));
  const replica = (name: string, ip: string) => ({ ...modelPod('x', 'a'), name, ip });
  const inside = await agent.podAdded(replica('a2', '10.1.0.50'), { key: 'x/a2', ip: '10.1.0.50', hostVeth: 'wp-x-a2' });
  assert.equal(inside.mode, 'partial', 'a covered veth: elements only');
  const outside = await agent.podAdded(replica('a3', '10.1.0.51'), { key: 'x/a3', ip: '10.1.0.51', hostVeth: 'other-a3' });
  assert.equal(outside.lastApplyOk, true);
  assert.equal(outside.rendered, true, 'a veth outside the wildcard is not patched in');
  assert.ok((agent.lastRuleset?.chains.get('forward')?.rules ?? []).some((r) => r.startsWith('iif @pod_ifs iif . ip saddr != @pod_src')), 'the render added the per-packet rule');
});

test('anti-spoofing matches interfaces by index: elements only for veths with one, the agent resolves them in its namespace', async () => {
  const withIndex = renderRuleset({ engine: new PolicyEngine(cluster), localPods: locals((n) => `wp-x-${n}`).map((p, i) => (i === 0 ? { ...p, hostVethIndex: 7 } : p)) });
  const ip = cluster.pods.find((p) => p.namespace === 'x')?.ip as string;
  assert.deepEqual(withIndex.sets.get('pod_ifs')?.elements, ['7'], 'only the pod whose veth has an index');
  assert.deepEqual(withIndex.sets.get('pod_src')?.elements, [`7 . ${ip}`]);
  assert.equal(withIndex.sets.get('pod_ifs')?.type, 'iface_index');
  assert.equal(withIndex.sets.get('pod_src')?.type, 'iface_index . ipv4_addr');
  // A fixed-size set: the kernel's hash for 4-byte keys, not the resizable one.
  assert.match(fullScript(withIndex), /set pod_ifs \{ type iface_index; size 65536; \}/);
  // The agent looks names up where it runs: `lo` exists in every namespace (index 1), the other veths do not.
  const lines: string[] = [];
  const agent = new NodeAgent({ node: 'n1', runner: () => Promise.resolve({ ok: true, stderr: '' }), netlinkElements: false, podInterfaces: 'wp*', log: (l) => lines.push(l) });
  const st = await agent.sync(cluster, locals((n) => (n === 'a' ? 'lo' : `wp-x-${n}`)));
  assert.equal(st.lastApplyOk, true);
  const a = cluster.pods.find((p) => p.namespace === 'x' && p.name === 'a');
  assert.deepEqual(agent.lastRuleset?.sets.get('pod_src')?.elements, [`1 . ${a?.ip ?? ''}`]);
  assert.deepEqual(agent.pendingInterfaces().sort(), locals((n) => `wp-x-${n}`).filter((p) => p.key !== 'x/a').map((p) => p.hostVeth).sort());
  assert.ok(lines.some((l) => /pod interfaces not found in the node's namespace: wp-x-.*not ready: dropped/.test(l)), lines.join('\n'));
  // Nothing appeared: a retry changes nothing.
  assert.equal(await agent.refreshInterfaces(), undefined);
});

test('without koffi, interface indexes come from iproute2, the same as if_nametoindex gives', () => {
  const names = ['lo', 'wp-none-such', 'bad/name'];
  const ours = interfaceIndexes(undefined, names);
  const ip = interfaceIndexesByIp(undefined, names);
  assert.deepEqual([...ip], [['lo', 1]]);
  assert.deepEqual([...ip], [...ours]);
  // A namespace that is not there: an error that names the command, not an empty answer.
  assert.throws(() => interfaceIndexesByIp('weir-no-such-netns', ['lo']), /`ip -n weir-no-such-netns -j link show` failed: .+/);
});
