// suite: lab (root: network namespaces, nftables; the model half runs without root)
// Incremental changes equal a fresh render: pod events patched element by element (with and
// without Services, past the point where patched sets are compacted) give the table a full
// render of the same state gives — in the model, and in the kernel (two namespaces, one fed
// by events through netlink, one loaded in full, listings compared).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Cluster, Pod, Service } from '../src/model/cluster.js';
import { NodeAgent } from '../src/agent/index.js';
import { netlinkIdle } from '../src/nft/index.js';
import { fullScript, renderRuleset, type LocalPod, type Ruleset } from '../src/render/index.js';
import { collectReasons } from '../src/render/reasons.js';
import { planServices } from '../src/render/services.js';
import { run } from '../src/exec/run.js';
import { churnCluster, churnLocal, extraPod } from './helpers/netlink-churn.js';

const isRoot = process.getuid?.() === 0;
const PREFIX = `wni${randomBytes(2).toString('hex')}`;

const service: Service = {
  namespace: 'y',
  name: 'web',
  selector: { pod: 'b' },
  ports: [{ port: 80, targetPort: 80, protocol: 'TCP' }],
  clusterIP: '10.96.0.10',
  type: 'ClusterIP',
  sessionAffinity: 'None',
  internalTrafficPolicy: 'Cluster',
  annotations: {},
};

/** The i-th extra replica of y/b (selected by the Service): 10.2.1.<10+i>. */
const extraB = (i: number): Pod => ({ ...churnCluster().pods.find((p) => p.namespace === 'y' && p.name === 'b')!, name: `b-extra${i}`, ip: `10.2.1.${10 + i}` });

/** What a fresh agent would render for the agent's current state (same engine, same local pods). */
function fresh(agent: NodeAgent, cluster: Cluster, locals: readonly LocalPod[]): string {
  const services = cluster.services.length > 0 ? planServices(cluster, [], 'n0') : undefined;
  return fullScript(renderRuleset({ engine: agent.engine, localPods: locals, reasons: collectReasons(agent.engine), ...(services ? { services } : {}) }));
}

const script = (rs: Ruleset | undefined) => (rs ? fullScript(rs) : '');

describe('incremental pod changes equal a fresh render (model, stub runner)', () => {
  it('600 pod adds and removes, patched one by one (patched sets compacted on the way), end where a full render ends', async () => {
    const scripts: string[] = [];
    const agent = new NodeAgent({ node: 'n0', runner: async (s) => (scripts.push(s), { ok: true, stderr: '' }) });
    const cluster = churnCluster();
    let locals = churnLocal();
    await agent.sync(cluster, locals);
    const pods: Pod[] = [...cluster.pods];
    const live = new Map<number, Pod>();
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let step = 0; step < 600; step++) {
      const i = Math.floor(rnd() * 700);
      const existing = live.get(i);
      const st = existing ? await agent.podRemoved('x', existing.name) : await agent.podAdded({ ...extraPod(0), name: `a-r${i}`, ip: `10.1.${2 + (i >> 8)}.${i & 255}` }, { key: `x/a-r${i}`, ip: `10.1.${2 + (i >> 8)}.${i & 255}`, hostVeth: `wr${i}` });
      assert.equal(st.mode, 'partial', `step ${step}: ${st.error ?? ''}`);
      if (existing) live.delete(i);
      else live.set(i, { ...extraPod(0), name: `a-r${i}`, ip: `10.1.${2 + (i >> 8)}.${i & 255}` });
    }
    assert.ok(scripts.slice(1).every((s) => s.split('\n').every((l) => l === '' || /^(add|delete) element /.test(l))), 'element commands only');
    locals = [...churnLocal(), ...[...live.entries()].map(([i, p]) => ({ key: `x/${p.name}`, ip: p.ip, hostVeth: `wr${i}` }))];
    assert.equal(script(agent.lastRuleset), fresh(agent, { ...cluster, pods: [...pods, ...live.values()] }, locals));
    assert.equal(agent.last?.localPods, locals.length);
    assert.equal(agent.last?.identities?.find((e) => e.namespace === 'x' && e.labels.pod === 'a')?.pods, 1 + live.size);
  });

  it('with Services: pod changes, selected by a Service or not, are element patches equal to a fresh render', async () => {
    const scripts: string[] = [];
    const agent = new NodeAgent({ node: 'n0', runner: async (s) => (scripts.push(s), { ok: true, stderr: '' }) });
    const cluster: Cluster = { ...churnCluster(), services: [service] };
    await agent.sync(cluster, churnLocal());
    assert.ok(agent.lastRuleset?.sets.has('svc_ports'), 'the service section is there');
    const a = extraPod(3);
    const st = await agent.podAdded(a, { key: `x/${a.name}`, ip: a.ip, hostVeth: 'wa3' });
    assert.equal(st.mode, 'partial');
    assert.ok(scripts.at(-1)?.trim().split('\n').every((l) => l.startsWith('add element ')), scripts.at(-1) ?? '');
    const afterA: Cluster = { ...cluster, pods: [...cluster.pods, a] };
    const localsA = [...churnLocal(), { key: `x/${a.name}`, ip: a.ip, hostVeth: 'wa3' }];
    assert.equal(script(agent.lastRuleset), fresh(agent, afterA, localsA));
    const b = extraB(0);
    const stB = await agent.podAdded(b, { key: `y/${b.name}`, ip: b.ip, hostVeth: 'wb0' });
    assert.equal(stB.mode, 'partial');
    const lines = scripts.at(-1)?.trim().split('\n') ?? [];
    assert.ok(lines.every((l) => /^(add|delete) element /.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^add element inet weir lb_web_80_\w+ \{ .*10\.2\.1\.10 \. 80/.test(l)), 'the endpoint joins the weight map');
    const afterB: Cluster = { ...afterA, pods: [...afterA.pods, b] };
    const localsB = [...localsA, { key: `y/${b.name}`, ip: b.ip, hostVeth: 'wb0' }];
    assert.equal(script(agent.lastRuleset), fresh(agent, afterB, localsB));
    assert.match(script(agent.lastRuleset), /10\.2\.1\.10 \. 80/, 'the new replica is an endpoint');
    await agent.podRemoved('x', a.name);
    await agent.podRemoved('y', b.name);
    assert.equal(script(agent.lastRuleset), fresh(agent, cluster, churnLocal()));
  });

  it('a pod of a new identity on another node comes and goes as group elements only (no render)', async () => {
    const scripts: string[] = [];
    const agent = new NodeAgent({ node: 'n0', runner: async (s) => (scripts.push(s), { ok: true, stderr: '' }) });
    const cluster = churnCluster();
    await agent.sync(cluster, churnLocal());
    // New labels: a new identity, still in the group y's policy selects (ns x, pod a).
    const remote: Pod = { ...extraPod(40), name: 'a-remote', node: 'elsewhere', labels: { pod: 'a', canary: 'yes' } };
    assert.equal(agent.engine.identityOfPod('x/a-remote'), undefined);
    const withRemote: Cluster = { ...cluster, pods: [...cluster.pods, remote] };
    const st = await agent.sync(withRemote, churnLocal());
    assert.equal(st.mode, 'partial', st.error ?? '');
    assert.equal(st.rendered, false, 'patched, not rendered');
    const lines = scripts.at(-1)?.trim().split('\n') ?? [];
    assert.ok(lines.length > 0 && lines.every((l) => /^add element /.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => l.includes(remote.ip ?? '?')), 'its address joins the group set');
    assert.equal(script(agent.lastRuleset), fresh(agent, withRemote, churnLocal()));
    const stGone = await agent.sync(cluster, churnLocal());
    assert.equal(stGone.mode, 'partial', stGone.error ?? '');
    assert.equal(stGone.rendered, false, 'patched, not rendered');
    const gone = scripts.at(-1)?.trim().split('\n') ?? [];
    assert.ok(gone.length > 0 && gone.every((l) => /^delete element /.test(l)), gone.join('\n'));
    assert.equal(agent.engine.identityOfPod('x/a-remote'), undefined, 'the identity went with its last pod');
    assert.equal(script(agent.lastRuleset), fresh(agent, cluster, churnLocal()));
  });

  it('a Service added, changed and removed on a running agent reaches the ruleset (no pod change with it)', async () => {
    const scripts: string[] = [];
    const agent = new NodeAgent({ node: 'n0', runner: async (s) => (scripts.push(s), { ok: true, stderr: '' }) });
    const cluster = churnCluster();
    await agent.sync(cluster, churnLocal());
    assert.doesNotMatch(script(agent.lastRuleset), /10\.96\.0\.10/);
    const withService: Cluster = { ...cluster, services: [service] };
    await agent.sync(withService, churnLocal());
    assert.match(scripts.at(-1) ?? '', /10\.96\.0\.10/, 'the new ClusterIP is sent to the kernel');
    assert.equal(script(agent.lastRuleset), fresh(agent, withService, churnLocal()));
    const moved: Cluster = { ...cluster, services: [{ ...service, ports: [{ port: 8080, targetPort: 80, protocol: 'TCP' }] }] };
    await agent.sync(moved, churnLocal());
    assert.equal(script(agent.lastRuleset), fresh(agent, moved, churnLocal()));
    assert.match(script(agent.lastRuleset), /10\.96\.0\.10 \. tcp \. 8080/);
    await agent.sync(cluster, churnLocal());
    assert.doesNotMatch(script(agent.lastRuleset), /10\.96\.0\.10/, 'the removed Service is gone');
  });
});

describe('incremental pod changes equal a fresh render (kernel listings)', { skip: !isRoot && 'needs root' }, () => {
  const nsEvents = `${PREFIX}-ev`;
  const nsFull = `${PREFIX}-fu`;
  const created: string[] = [];
  before(async () => {
    for (const ns of [nsEvents, nsFull]) {
      await run(['ip', 'netns', 'add', ns]);
      created.push(ns);
    }
  });
  after(async () => {
    await netlinkIdle();
    for (const ns of created.splice(0)) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
  });

  /** The namespace's tables (weir's and the source chains') as nft lists them in JSON, with handles dropped and every set's elements sorted. */
  const listing = async (ns: string): Promise<unknown> => {
    const json = JSON.parse((await run(['ip', 'netns', 'exec', ns, 'nft', '-j', 'list', 'ruleset'])).stdout) as { nftables: Record<string, Record<string, unknown>>[] };
    return json.nftables
      .filter((o) => !('metainfo' in o))
      .map((o) => {
        const [kind, body] = Object.entries(o)[0];
        const { handle: _h, ...rest } = body;
        if (Array.isArray(rest.elem)) rest.elem = rest.elem.map((e) => JSON.stringify(e)).sort();
        return JSON.stringify([kind, rest]);
      })
      .sort();
  };

  it('pod adds and removes through netlink (with a Service present) leave the kernel as a full load of the end state does', async () => {
    const cluster: Cluster = { ...churnCluster(), services: [service] };
    const events = new NodeAgent({ node: 'n0', netns: nsEvents });
    const full = new NodeAgent({ node: 'n0', netns: nsFull });
    try {
      assert.ok((await events.sync(cluster, churnLocal())).lastApplyOk);
      const kept: Pod[] = [];
      const keptLocals: LocalPod[] = [];
      for (let i = 0; i < 12; i++) {
        const p = extraPod(i);
        const local = { key: `x/${p.name}`, ip: p.ip, hostVeth: `wk${i}` };
        const st = await events.podAdded(p, local);
        assert.ok(st.lastApplyOk && st.via === 'netlink', `${st.error ?? ''} ${st.fallback ?? ''}`);
        if (i % 3 === 0) {
          const gone = await events.podRemoved('x', p.name);
          assert.ok(gone.lastApplyOk && gone.via === 'netlink', `${gone.error ?? ''} ${gone.fallback ?? ''}`);
        } else {
          kept.push(p);
          keptLocals.push(local);
        }
      }
      const end: Cluster = { ...cluster, pods: [...cluster.pods, ...kept] };
      assert.ok((await full.sync(end, [...churnLocal(), ...keptLocals])).lastApplyOk);
      assert.deepEqual(await listing(nsEvents), await listing(nsFull));
      assert.match(JSON.stringify(await listing(nsEvents)), /10\.1\.1\.11/, 'a kept replica is in the kernel');
    } finally {
      events.close();
      full.close();
    }
  });
});
