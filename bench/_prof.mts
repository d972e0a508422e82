import { NodeAgent } from '../src/agent/index.js';
import { generateCluster } from './generate.js';
const N = Number(process.argv[2] ?? 10000);
const c = generateCluster({ pods: N, policiesPerPod: 0.5 });
const all = c.pods.map((p, i) => ({ ...p, node: i % 2 === 1 ? 'n1' : 'n2' }));
const agent = new NodeAgent({ node: 'n2', runner: async () => ({ ok: true, stderr: '' }) });
let t = performance.now();
await agent.sync({ ...c, pods: all }, all.filter((p) => p.node === 'n2').map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip })));
console.log('sync', Math.round(performance.now() - t));
const tpl = all[2];
const ms: number[] = [];
for (let i = 0; i < 15; i++) {
  const pod = { ...tpl, name: `${tpl.name}-x${i}`, ip: `10.250.0.${7 + i}`, node: 'n2' };
  t = performance.now();
  const st = await agent.podAdded(pod, { key: `${pod.namespace}/${pod.name}`, ip: pod.ip, hostVeth: 'wpod' });
  ms.push(performance.now() - t);
  if (i === 0) console.log(st.mode, st.renderMs);
  await agent.podRemoved(pod.namespace, pod.name);
}
console.log(ms.map((x) => x.toFixed(2)).join(' '));
{
  const { patchPods, namedEgress } = await import('../src/render/render.js');
  const { rulesetStats } = await import('../src/render/ruleset.js');
  const applied = agent.applier.applied!;
  const named = namedEgress(agent.engine);
  const pod = { ...tpl, name: `${tpl.name}-y`, ip: `10.250.1.7`, node: 'n2' };
  const key = `${pod.namespace}/${pod.name}`;
  let t = performance.now();
  agent.engine.upsertPod(pod);
  console.log('upsert', (performance.now() - t).toFixed(2));
  const id = agent.engine.identityOfPod(key)!;
  const locals = new Map([[key, { key, ip: pod.ip }]]);
  for (let i = 0; i < 5; i++) {
    t = performance.now();
    const r = patchPods(applied, agent.engine, { added: [pod], removed: [] }, { removedIdentities: new Map(), locals, localsBefore: new Map(), identitiesBefore: new Set([id.id]), namedEgressRules: named });
    const t2 = performance.now();
    rulesetStats(r!);
    console.log('patchPods', (t2 - t).toFixed(2), 'stats', (performance.now() - t2).toFixed(2), [...r!.patch!.added.keys()].length);
  }
}
