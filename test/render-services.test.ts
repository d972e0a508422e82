// The service NAT section, pure (no root): what it declares for Services with weights,
// affinity, no endpoints and NodePorts, that base-chain rules do not grow with Services, and
// that a weight change through the element fast path equals a fresh render.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadManifestText } from '../src/load/index.js';
import type { Cluster, Pod } from '../src/model/cluster.js';
import { planServices, renderServices, serviceWeightPatch, NODEPORT_IPS_SET, SERVICE_NODEPORTS_MAP, SERVICE_PORTS_MAP, SERVICE_REJECT_MAP, SERVICE_REJECT_NODEPORTS_MAP } from '../src/render/services.js';

function cluster(yaml: string, pods: Pod[]): Cluster {
  const { cluster: c, diagnostics } = loadManifestText(yaml, 's.yaml');
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'error'), []);
  return { ...c, pods, nodes: [{ name: 'n0', labels: {}, ip: '172.31.255.10' }] };
}

const pod = (name: string, ip: string, labels: Record<string, string>): Pod => ({
  namespace: 'shop', name, labels, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], hostNetwork: false, ip, node: 'n0', workload: `shop/${name}[Pod]`,
});

const YAML = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop, annotations: { weir.dev/weights: "pod/a: 9, pod/b: 1" } }
spec: { type: NodePort, clusterIP: 10.96.0.80, selector: { app: web }, ports: [{ port: 80, targetPort: http, nodePort: 30080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: sticky, namespace: shop }
spec: { clusterIP: 10.96.0.81, selector: { app: web }, ports: [{ port: 80, targetPort: http }], sessionAffinity: ClientIP, sessionAffinityConfig: { clientIP: { timeoutSeconds: 30 } } }
---
apiVersion: v1
kind: Service
metadata: { name: empty, namespace: shop }
spec: { clusterIP: 10.96.0.82, selector: { app: none }, ports: [{ port: 53, protocol: UDP }] }
`;
const PODS = [pod('a', '10.244.0.2', { app: 'web' }), pod('b', '10.244.0.3', { app: 'web' })];

/** A weight map's elements (`0-4 : x`, `5 : y`) as the value of each numgen slot, in order. */
function slotsOf(elements: readonly string[]): string[] {
  const out: string[] = [];
  for (const e of elements) {
    const m = /^(\d+)(?:-(\d+))? : (.+)$/.exec(e);
    assert.ok(m, e);
    for (let i = Number(m[1]); i <= Number(m[2] ?? m[1]); i++) {
      assert.equal(out[i], undefined, `slot ${i} twice`);
      out[i] = m[3];
    }
  }
  assert.equal(out.filter((x) => x !== undefined).length, out.length, 'no slot left out');
  return out;
}

describe('service NAT section', () => {
  test('one lookup map, weights as ranges, affinity sets, rejects without endpoints', () => {
    const rs = renderServices(planServices(cluster(YAML, PODS), [], 'n0'));
    const ports = rs.sets.get(SERVICE_PORTS_MAP)?.elements ?? [];
    assert.equal(ports.length, 2, ports.join('\n'));
    assert.ok(ports.some((e) => e.startsWith('10.96.0.80 . tcp . 80 : goto svc_web_80_')));
    // NodePorts: kube-proxy's shape, one map by protocol and port behind the node's addresses.
    assert.deepEqual(rs.sets.get(NODEPORT_IPS_SET)?.elements, ['172.31.255.10']);
    assert.match(rs.sets.get(SERVICE_NODEPORTS_MAP)?.elements.join('\n') ?? '', /^tcp \. 30080 : goto ext_web_30080_\w+$/);
    assert.deepEqual(rs.sets.get(SERVICE_REJECT_MAP)?.elements, ['10.96.0.82 . udp . 53 : goto svc_reject_conn']);
    const lb = [...rs.sets.values()].filter((s) => s.name.startsWith('lb_web_80_'));
    assert.equal(lb.length, 1, 'NodePort and ClusterIP share one chain when the traffic policies agree');
    // Without affinity the weight map holds the endpoints' addresses and ports (DNAT data), no
    // chain per endpoint. Weighted (9:1): 100 slots taken in turn (`numgen inc`), interleaved so
    // that every 10 consecutive new connections hold exactly one for b.
    assert.match(lb[0].type, /^typeof numgen inc mod 100 : ip daddr \. tcp dport$/);
    const slots = slotsOf(lb[0].elements);
    assert.equal(slots.length, 100);
    assert.equal(slots.filter((x) => x === '10.244.0.3 . 8080').length, 10);
    assert.equal(slots.filter((x) => x === '10.244.0.2 . 8080').length, 90);
    for (let i = 0; i < 100; i++) {
      const window = Array.from({ length: 10 }, (_, k) => slots[(i + k) % 100]);
      assert.equal(window.filter((x) => x === '10.244.0.3 . 8080').length, 1, `slots ${i}…${i + 9}: ${window.join(', ')}`);
    }
    const web = [...rs.chains.values()].find((c) => c.name.startsWith('svc_web'));
    assert.deepEqual(web?.rules, [`meta l4proto tcp dnat ip to numgen inc mod 100 map @${lb[0].name}`]);
    assert.ok(![...rs.chains.keys()].some((n) => n.startsWith('ep_web')));
    const aff = [...rs.sets.values()].filter((s) => s.name.startsWith('aff_sticky'));
    assert.equal(aff.length, 2);
    assert.ok(aff.every((s) => s.dynamic && s.extra.includes('timeout 30s') && s.flags.includes('timeout')));
    const chain = [...rs.chains.values()].find((c) => c.name.startsWith('svc_sticky'));
    assert.match(chain?.rules.join('\n') ?? '', /^ip saddr @aff_sticky_\S+ goto ep_sticky_/m);
    assert.match(chain?.rules.at(-1) ?? '', /^numgen random mod 1000 vmap @lb_sticky_80_/);
    const ep = [...rs.chains.values()].find((c) => c.name.startsWith('ep_sticky'));
    assert.match(ep?.rules[0] ?? '', /^meta l4proto tcp update @aff_sticky_\S+ \{ ip saddr \} dnat ip to 10\.244\.0\.\d:8080$/);
  });

  test('base chains do not grow with Services (one map lookup)', () => {
    const many = Array.from({ length: 50 }, (_, i) => YAML.replace(/name: (web|sticky|empty),/g, `name: $1-${i},`).replaceAll('10.96.0.8', `10.96.${i + 1}.8`).replace('nodePort: 30080', `nodePort: ${30100 + i}`)).join('---\n');
    const one = renderServices(planServices(cluster(YAML, PODS), [], 'n0'));
    const fifty = renderServices(planServices(cluster(many, PODS), [], 'n0'));
    for (const base of ['svc_nat_pre', 'svc_nat_out', 'svc_check_pre', 'svc_check_out', 'svc_hairpin', 'svc_masq']) {
      assert.deepEqual(fifty.chains.get(base)?.rules, one.chains.get(base)?.rules);
      assert.equal(one.chains.get(base)?.rules.length, base === 'svc_hairpin' ? 1 : 2, base);
    }
  });

  test('a weight change is an element patch equal to a fresh render', () => {
    const c = cluster(YAML.replace(/---[\s\S]*$/, ''), PODS);
    const before = renderServices(planServices(c, [], 'n0'));
    const input = planServices(c, [], 'n0', { health: new Map([['10.244.0.2:8080', false]]) });
    const patched = serviceWeightPatch(before, input, new Set(['shop/web']));
    assert.ok(patched?.patch);
    const fresh = renderServices(input);
    for (const [name, set] of fresh.sets) assert.deepEqual(patched.sets.get(name)?.elements, set.elements, name);
    const lb = [...patched.patch.added.entries()];
    assert.equal(lb.length, 1);
    assert.equal(lb[0][1].join(), '0-99 : 10.244.0.3 . 8080');
  });

  test('equal Services keep weighted random; weighted and adaptive ones take interleaved slots in turn, and a change of mode is more than a patch', () => {
    const three = [...PODS, pod('c', '10.244.0.4', { app: 'web' })];
    const svc = (annotations: string) => `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop, annotations: { ${annotations} } }
spec: { clusterIP: 10.96.0.80, selector: { app: web }, ports: [{ port: 80, targetPort: http }] }
`;
    const lbOf = (rs: ReturnType<typeof renderServices>) => [...rs.sets.values()].find((s) => s.name.startsWith('lb_web')) ?? assert.fail('no weight map');
    const equal = renderServices(planServices(cluster(svc(''), three), [], 'n0'));
    assert.match(lbOf(equal).type, /^typeof numgen random mod 1000 :/);
    assert.deepEqual(lbOf(equal).elements, ['0-333 : 10.244.0.2 . 8080', '334-666 : 10.244.0.3 . 8080', '667-999 : 10.244.0.4 . 8080']);
    // Adaptive with factors 2 : 1 : 1 → 50/25/25 slots: a on every other slot.
    const adaptiveCluster = cluster(svc('weir.dev/balancing: adaptive'), three);
    const factors = new Map([['shop/web/0', new Map([['10.244.0.2:8080', 2], ['10.244.0.3:8080', 1], ['10.244.0.4:8080', 1]])]]);
    const adaptive = renderServices(planServices(adaptiveCluster, [], 'n0', { adaptive: factors }));
    const slots = slotsOf(lbOf(adaptive).elements);
    assert.match(lbOf(adaptive).type, /^typeof numgen inc mod 100 :/);
    assert.equal(slots.length, 100);
    for (let i = 0; i < 100; i += 2) assert.deepEqual([slots[i] === '10.244.0.2 . 8080', slots[i + 1] === '10.244.0.2 . 8080'].filter(Boolean).length, 1, `slots ${i}, ${i + 1}: ${slots[i]}, ${slots[i + 1]}`);
    assert.equal(slots.filter((x) => x === '10.244.0.3 . 8080').length, 25);
    // The factors change: still elements only, equal to a fresh render.
    const moved = planServices(adaptiveCluster, [], 'n0', { adaptive: new Map([['shop/web/0', new Map([['10.244.0.2:8080', 1], ['10.244.0.3:8080', 3], ['10.244.0.4:8080', 1]])]]) });
    const patched = serviceWeightPatch(adaptive, moved, new Set(['shop/web']));
    assert.ok(patched?.patch);
    assert.deepEqual(patched.sets.get(lbOf(adaptive).name)?.elements, lbOf(renderServices(moved)).elements);
    assert.equal(slotsOf(lbOf(renderServices(moved)).elements).filter((x) => x === '10.244.0.3 . 8080').length, 60);
    // From equal to adaptive the rule itself changes (random → inc): not a weight patch.
    assert.equal(serviceWeightPatch(equal, planServices(adaptiveCluster, [], 'n0'), new Set(['shop/web'])), undefined);
  });

  test('NodePort masquerade as kube-proxy: Cluster marks and SNATs to the node address, Local keeps the client and drops without a local endpoint', () => {
    const yaml = `apiVersion: v1
kind: Service
metadata: { name: web, namespace: shop }
spec: { type: NodePort, clusterIP: 10.96.0.80, selector: { app: web }, ports: [{ port: 80, targetPort: http, nodePort: 30080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: loc, namespace: shop }
spec: { type: NodePort, externalTrafficPolicy: Local, internalTrafficPolicy: Local, clusterIP: 10.96.0.81, selector: { app: web }, ports: [{ port: 80, targetPort: http, nodePort: 30081 }] }
---
apiVersion: v1
kind: Service
metadata: { name: none, namespace: shop }
spec: { type: NodePort, clusterIP: 10.96.0.82, selector: { app: nothing }, ports: [{ port: 80, nodePort: 30082 }] }
`;
    const c: Cluster = { ...cluster(yaml, PODS), nodes: [{ name: 'n0', labels: {}, ip: '172.31.255.10' }, { name: 'n1', labels: {}, ip: '172.31.255.11' }] };
    // n1 has no endpoint: Cluster goes to n0's pods (masqueraded), Local drops, no endpoint at all rejects.
    const n1 = renderServices(planServices(c, [], 'n1'));
    assert.deepEqual(n1.sets.get(NODEPORT_IPS_SET)?.elements, ['172.31.255.11']);
    const np = n1.sets.get(SERVICE_NODEPORTS_MAP)?.elements ?? [];
    assert.equal(np.length, 1, np.join('\n'));
    const ext = /^tcp \. 30080 : goto (ext_web_30080_\w+)$/.exec(np[0] ?? '')?.[1] as string;
    assert.ok(ext, np[0]);
    assert.deepEqual(n1.chains.get(ext)?.rules, ['jump svc_mark_masq', `goto ${/goto (svc_web_80_\w+)/.exec(n1.sets.get(SERVICE_PORTS_MAP)?.elements.find((e) => e.startsWith('10.96.0.80')) ?? '')?.[1]}`]);
    assert.deepEqual(n1.chains.get('svc_mark_masq')?.rules, ['meta mark set meta mark or 0x00004000']);
    assert.deepEqual(n1.chains.get('svc_masq')?.rules, ['meta mark & 0x00004000 == 0x00000000 return', 'meta mark set meta mark xor 0x00004000 snat ip to 172.31.255.11 fully-random']);
    assert.match(n1.chains.get('svc_masq')?.hook ?? '', /hook postrouting priority srcnat/);
    assert.deepEqual(n1.chains.get('svc_hairpin')?.rules, ['ct state new ct status dnat fib daddr . iif oif exists meta mark set meta mark or 0x00004000']);
    assert.deepEqual(n1.sets.get(SERVICE_REJECT_NODEPORTS_MAP)?.elements, ['tcp . 30081 : drop', 'tcp . 30082 : goto svc_reject_conn']);
    // internalTrafficPolicy Local without a local endpoint: the ClusterIP drops too (kube-proxy).
    assert.deepEqual(n1.sets.get(SERVICE_REJECT_MAP)?.elements, ['10.96.0.81 . tcp . 80 : drop', '10.96.0.82 . tcp . 80 : goto svc_reject_conn']);
    // n0 holds the endpoints: Local's NodePort goes straight to them, unmarked (the client's address stays).
    const n0 = renderServices(planServices(c, [], 'n0'));
    const np0 = n0.sets.get(SERVICE_NODEPORTS_MAP)?.elements ?? [];
    assert.equal(np0.length, 2, np0.join('\n'));
    assert.match(np0.find((e) => e.startsWith('tcp . 30081')) ?? '', /^tcp \. 30081 : goto svc_loc_80_\w+$/);
    assert.deepEqual(n0.sets.get(SERVICE_REJECT_NODEPORTS_MAP)?.elements, ['tcp . 30082 : goto svc_reject_conn']);
    // kube-proxy's short-circuit: with internalTrafficPolicy Cluster, a Local NodePort on a node
    // without a local endpoint still takes pods' (by interface) and the node's own connections
    // to every endpoint (the node's masqueraded); everything else is dropped there.
    const cl: Cluster = { ...c, services: c.services.map((x) => (x.name === 'loc' ? { ...x, internalTrafficPolicy: 'Cluster' as const } : x)) };
    const short = renderServices(planServices(cl, [], 'n1', { podInterfaces: 'wp*' }));
    const loc = /^tcp \. 30081 : goto (ext_loc_30081_\w+)$/m.exec(short.sets.get(SERVICE_NODEPORTS_MAP)?.elements.join('\n') ?? '')?.[1] as string;
    assert.ok(loc, short.sets.get(SERVICE_NODEPORTS_MAP)?.elements.join('\n') ?? '');
    const all = /goto (svc_loc_80_\w+)/.exec(short.sets.get(SERVICE_PORTS_MAP)?.elements.find((e) => e.startsWith('10.96.0.81')) ?? '')?.[1] as string;
    assert.deepEqual(short.chains.get(loc)?.rules, [`iifname "wp*" goto ${all}`, 'fib saddr type local jump svc_mark_masq', `fib saddr type local goto ${all}`, 'drop']);
    assert.deepEqual(short.sets.get(SERVICE_REJECT_NODEPORTS_MAP)?.elements, ['tcp . 30082 : goto svc_reject_conn'], 'the drop moved into the external chain');
    // Without a node address there is nothing to SNAT to: the kernel's masquerade.
    const noIp = renderServices({ ...planServices(c, [], 'n1'), nodeIps: [] });
    assert.equal(noIp.chains.get('svc_masq')?.rules[1], 'meta mark set meta mark xor 0x00004000 masquerade fully-random');
  });
});
