// Cluster-scale benchmark, policy part: `sudo npx tsx bench/cluster.ts [--pods 100000]
// [--policies 50000] [--nodes 100] [--rate 1000] [--seconds 60] [--agent-heap 768]`.
//
// One agent (src/agent/cluster.ts: the agent `weir agent --kubeconfig` runs, in policy-only
// mode) on node-0 of a synthetic cluster (bench/generate.ts: namespaces of 20 pods, the
// policy mix of the other benchmarks; pods spread over `--nodes` nodes), its ruleset applied to
// a real kernel in a network namespace this script creates (and removes, also on failure or
// Ctrl-C). The agent runs in a process of its own (bench/cluster-agent.ts), so that its memory
// is measured apart from the generator's; the cluster reaches it as ClusterSource events over
// IPC (model objects, as the Kubernetes source delivers them after normalization: list parsing
// and normalization are not measured here), first the whole state, then churn: `--rate` pod
// events per second for `--seconds` (replicas of existing workloads added and deleted on random
// nodes, half each, so ~1/nodes of them are local). Events that arrive while a transaction is
// in flight go into the next one (the agent's batching).
//
// Prints: the initial sync (events, time to the first ruleset in the kernel), event → kernel
// lag p50/p99/max (from the moment the bench sent the event to the moment it hears that the
// transaction carrying it ended), transactions by how they were computed (elements, chains,
// full render), ruleset size, the agent process's RSS after the sync and its peak during the
// churn, and whether the final ruleset equals a fresh render of the final state (no event
// lost): both the agent's model and the kernel's listing (element and rule counts per set and
// chain).

import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Pod } from '../src/model/cluster.js';
import type { ClusterAgentState } from '../src/agent/cluster.js';
import { NodeAgent } from '../src/agent/agent.js';
import { snapshotEvents } from '../src/source/diff.js';
import { snapshotOfCluster } from '../src/source/files.js';
import type { ClusterEvent } from '../src/source/types.js';
import { run } from '../src/exec/run.js';
import { rng } from '../src/synthetic/random.js';
import { generateCluster } from './generate.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '100000' },
    policies: { type: 'string', default: '50000' },
    nodes: { type: 'string', default: '100' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '60' },
    seed: { type: 'string', default: '7' },
    // The agent's V8 heap limit (MiB; 0: V8's default, a quarter of the machine's memory here),
    // as a DaemonSet would set it under its memory limit: without one V8 lets garbage pile up
    // far beyond the live heap (at 100k pods ~450 MB live, 1,080 MiB RSS during the churn).
    'agent-heap': { type: 'string', default: '768' },
    // A V8 CPU profile of the agent during the churn, written to this file (.cpuprofile).
    'agent-prof': { type: 'string' },
  },
});
const PODS = Number(values.pods);
const POLICIES = Number(values.policies);
const NODES = Number(values.nodes);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);
const NODE = 'node-0';
const NETNS = `wbench${randomBytes(2).toString('hex')}-cluster`;

async function sh(argv: string[]): Promise<string> {
  return (await run(argv, { timeoutMs: 900_000 })).stdout;
}

function pct(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

const mib = (b: number): string => `${Math.round(b / 1024 / 1024)} MiB`;

/** The agent process's resident set size now and its peak so far (/proc: VmRSS, VmHWM), in bytes. */
function rssOf(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

type FromAgent =
  | { ready: true; initialMs: number; state: ClusterAgentState }
  | { applied: true; events: number; status: { mode: string; via?: string; change?: string; renderMs: number; applyMs: number; ok: boolean } }
  | { idle: true; state: ClusterAgentState }
  | { ruleset: true; error?: string; sets?: { name: string; dynamic: boolean; elements: string[] }[]; chains?: { name: string; rules: string[] }[]; reasons?: unknown };

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/cluster.ts needs root (nftables in a network namespace)');
  const t0 = performance.now();
  const generated = generateCluster({ pods: PODS, policiesPerPod: POLICIES / PODS, seed: Number(values.seed) });
  const pods = generated.pods.map((p, i) => ({ ...p, node: `node-${i % NODES}` }));
  console.log(`cluster: ${pods.length} pods on ${NODES} nodes (${pods.filter((p) => p.node === NODE).length} on ${NODE}), ${generated.networkPolicies.length} NetworkPolicies, ${generated.namespaces.length} namespaces (generated in ${Math.round(performance.now() - t0)} ms)`);
  const livePods = new Map<string, Pod>(pods.map((p) => [`${p.namespace}/${p.name}`, p]));
  await sh(['ip', 'netns', 'add', NETNS]);
  const child = fork(fileURLToPath(new URL('./cluster-agent.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx', ...(Number(values['agent-heap']) > 0 ? [`--max-old-space-size=${Number(values['agent-heap'])}`] : [])], serialization: 'advanced', env: { ...process.env, ...(values['agent-prof'] ? { WEIR_BENCH_PROF: values['agent-prof'] } : {}) }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  agentPid = child.pid;
  const waiters: ((m: FromAgent) => boolean)[] = [];
  let onApplied: ((m: Extract<FromAgent, { applied: true }>) => void) | undefined;
  child.on('message', (m: FromAgent) => {
    if ('applied' in m) onApplied?.(m);
    for (let i = 0; i < waiters.length; i++) if (waiters[i](m)) waiters.splice(i--, 1);
  });
  const exited = new Promise<never>((_, fail) => child.on('exit', (code) => fail(new Error(`the agent process exited (${code ?? 'signal'})`))));
  const wait = <K extends 'ready' | 'idle' | 'ruleset'>(key: K): Promise<Extract<FromAgent, Record<K, true>>> =>
    Promise.race([exited, new Promise<Extract<FromAgent, Record<K, true>>>((ok) => waiters.push((m) => (key in m ? (ok(m as Extract<FromAgent, Record<K, true>>), true) : false)))]);
  let peakChurn = 0;
  let sampler: NodeJS.Timeout | undefined;
  try {
    // ---------------------------------------------------------------- initial sync
    const snapshot = snapshotOfCluster({ namespaces: generated.namespaces, nodes: [], workloads: [], pods, services: [], networkPolicies: generated.networkPolicies, adminNetworkPolicies: [] });
    const all = snapshotEvents(snapshot);
    const s0 = performance.now();
    child.send({ start: { node: NODE, netns: NETNS } });
    for (let i = 0; i < all.length; i += 5000) child.send({ events: all.slice(i, i + 5000) });
    child.send({ synced: true });
    const ready = await wait('ready');
    const initialMs = performance.now() - s0;
    const st0 = ready.state;
    const afterSync = rssOf(child.pid as number);
    console.log(`initial sync: ${Object.values(st0.events).reduce((a, b) => a + b, 0)} events → first ruleset in the kernel in ${(initialMs / 1000).toFixed(1)} s (${(ready.initialMs / 1000).toFixed(1)} s in the agent); ruleset ${st0.ruleset?.rules} rules, ${st0.ruleset?.chains} chains, ${st0.ruleset?.sets} sets, ${st0.ruleset?.setElements} elements; agent RSS ${mib(afterSync.rss)} (peak so far ${mib(afterSync.hwm)})`);

    // ---------------------------------------------------------------- churn
    const emitted: number[] = []; // emission times, FIFO in event order
    const lags: number[] = [];
    const lagAt: number[] = []; // when each lagged event was sent, from the start of the churn
    const batches: number[] = [];
    let errors = 0;
    const modes = new Map<string, number>();
    let renderMs = 0;
    let applyMs = 0;
    onApplied = (b) => {
      const m = `${b.status.change ?? '?'} (${b.status.mode}${b.status.via ? `/${b.status.via}` : ''})`;
      modes.set(m, (modes.get(m) ?? 0) + 1);
      renderMs += b.status.renderMs;
      applyMs += b.status.applyMs;
      const now = performance.now();
      for (let i = 0; i < b.events; i++) {
        const t = emitted.shift();
        if (t !== undefined) {
          lags.push(now - t);
          lagAt.push(t - c0);
        }
      }
      batches.push(b.events);
      if (!b.status.ok) errors++;
    };
    sampler = setInterval(() => (peakChurn = Math.max(peakChurn, rssOf(child.pid as number).rss)), 100);
    const rand = rng(Number(values.seed) + 1);
    const templates = pods.filter((_, i) => i % 4 === 0); // one replica of each workload
    const live = [...livePods.keys()];
    let serial = 0;
    let sent = 0;
    let emittedCount = 0;
    let c0 = 0;
    const total = RATE * SECONDS;
    const tick = 10; // ms: RATE/100 events per tick
    c0 = performance.now();
    await new Promise<void>((done) => {
      const timer = setInterval(() => {
        const due = Math.min(total, Math.floor(((performance.now() - c0) / 1000) * RATE));
        const events: ClusterEvent[] = [];
        for (; sent < due; sent++) {
          if (sent % 2 === 0) {
            const t = templates[Math.floor(rand() * templates.length)];
            const n = serial++;
            const pod: Pod = { ...t, name: `${t.name}-churn-${n}`, ip: `172.${16 + ((n >> 16) & 15)}.${(n >> 8) & 255}.${n & 255}`, node: `node-${Math.floor(rand() * NODES)}` };
            live.push(`${pod.namespace}/${pod.name}`);
            livePods.set(`${pod.namespace}/${pod.name}`, pod);
            events.push({ type: 'added', kind: 'Pod', object: pod });
          } else {
            const at = Math.floor(rand() * live.length);
            const key = live[at];
            live[at] = live[live.length - 1];
            live.pop();
            const pod = livePods.get(key);
            livePods.delete(key);
            if (pod) events.push({ type: 'deleted', kind: 'Pod', object: pod });
          }
        }
        if (events.length > 0) {
          const now = performance.now();
          for (let i = 0; i < events.length; i++) emitted.push(now);
          emittedCount += events.length;
          child.send({ events });
        }
        if (sent >= total) {
          clearInterval(timer);
          done();
        }
      }, tick);
    });
    child.send({ idle: true });
    const { state: st } = await wait('idle');
    clearInterval(sampler);
    const churnMs = performance.now() - c0;
    const afterChurn = rssOf(child.pid as number);
    peakChurn = Math.max(peakChurn, afterChurn.rss);
    console.log(`churn: ${emittedCount} pod events in ${(churnMs / 1000).toFixed(1)} s (${Math.round(emittedCount / (churnMs / 1000))}/s, asked ${RATE}/s) → ${batches.length} transactions (${(emittedCount / Math.max(1, batches.length)).toFixed(1)} events each, max ${Math.max(0, ...batches)}; ${[...modes].map(([m, n]) => `${n} ${m}`).join(', ')}; engine+render ${Math.round(renderMs)} ms, kernel ${Math.round(applyMs)} ms in all), ${errors} apply errors`);
    console.log(`event → kernel lag: p50 ${pct(lags, 0.5).toFixed(1)} ms, p99 ${pct(lags, 0.99).toFixed(1)} ms, max ${Math.max(...lags).toFixed(1)} ms (${lags.length} events; goal p99 ≤ 1000 ms)`);
    // Where the tail comes from: the p99 of the events sent in each 10 s of the churn.
    const windows = Array.from({ length: Math.ceil(SECONDS / 10) }, (_, w) => lags.filter((_, i) => Math.floor(lagAt[i] / 10_000) === w));
    console.log(`lag p99 by 10 s of the churn: ${windows.map((w, i) => `${i * 10}–${i * 10 + 10} s ${pct(w, 0.99).toFixed(0)} ms`).join(', ')}`);
    console.log(`ruleset after churn: ${st.ruleset?.rules} rules, ${st.ruleset?.chains} chains, ${st.ruleset?.sets} sets, ${st.ruleset?.setElements} elements; ${st.localPods} local pods; changes since start: ${st.changes.elements} elements, ${st.changes.chains} chains, ${st.changes.full} full renders`);
    console.log(`agent process (V8 heap limit ${Number(values['agent-heap']) > 0 ? `${values['agent-heap']} MiB` : 'default'}) RSS: ${mib(afterSync.rss)} after the sync, peak ${mib(peakChurn)} during the churn (sampled every 100 ms), ${mib(afterChurn.hwm)} peak over its life (VmHWM, the sync included); goal ≤ 1024 MiB`);

    // ---------------------------------------------------------------- no event lost
    child.send({ check: true });
    const got = await wait('ruleset');
    if (got.error || !got.sets || !got.chains) throw new Error(`the agent could not report its ruleset: ${got.error ?? ''}`);
    const f0 = performance.now();
    const fresh = new NodeAgent({ node: NODE, runner: () => Promise.resolve({ ok: true, stderr: '' }), policyOnly: { podCidrs: [] } });
    const snap = snapshotOfCluster({ namespaces: generated.namespaces, nodes: [], workloads: [], pods: [...livePods.values()], services: [], networkPolicies: generated.networkPolicies, adminNetworkPolicies: [] });
    const locals = snap.cluster.pods.filter((p) => p.node === NODE && p.ip).map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip }));
    await fresh.apply({ events: snapshotEvents(snap), localPods: locals });
    const want = fresh.lastRuleset;
    if (!want) throw new Error('no fresh ruleset');
    const haveSets = new Map(got.sets.map((x) => [x.name, x]));
    const haveChains = new Map(got.chains.map((c) => [c.name, c]));
    const diffs: string[] = [];
    for (const [name, set] of want.sets) {
      const h = haveSets.get(name);
      if (!h) diffs.push(`set ${name} missing`);
      else if (!set.dynamic && h.elements.join('\n') !== set.elements.join('\n')) diffs.push(`set ${name}: ${h.elements.length} elements, fresh ${set.elements.length}`);
    }
    for (const name of haveSets.keys()) if (!want.sets.has(name)) diffs.push(`set ${name} extra`);
    for (const [name, chain] of want.chains) if (haveChains.get(name)?.rules.join('\n') !== chain.rules.join('\n')) diffs.push(`chain ${name} differs`);
    for (const name of haveChains.keys()) if (!want.chains.has(name)) diffs.push(`chain ${name} extra`);
    if (JSON.stringify(got.reasons) !== JSON.stringify(want.reasons)) diffs.push('reasons table differs');
    // And the kernel holds what the model says.
    const listing = JSON.parse(await sh(['ip', 'netns', 'exec', NETNS, 'nft', '-j', 'list', 'table', 'inet', 'weir'])) as { nftables: Record<string, { name?: string; elem?: unknown[] }>[] };
    const kernelSets = new Map(listing.nftables.flatMap((o) => (o.set?.name ? [[o.set.name, o.set.elem?.length ?? 0] as const] : o.map?.name ? [[o.map.name, o.map.elem?.length ?? 0] as const] : [])));
    for (const [name, set] of want.sets) if (!set.dynamic && (kernelSets.get(name) ?? 0) !== set.elements.length) diffs.push(`kernel set ${name}: ${kernelSets.get(name) ?? 0} elements, fresh ${set.elements.length}`);
    const kernelRules = listing.nftables.filter((o) => o.rule).length;
    const wantRules = [...want.chains.values()].reduce((n, c) => n + c.rules.length, 0);
    if (kernelRules !== wantRules) diffs.push(`kernel: ${kernelRules} rules, fresh ${wantRules}`);
    console.log(`final ruleset vs a fresh render of the final state (${((performance.now() - f0) / 1000).toFixed(1)} s): ${diffs.length === 0 ? 'equal (model, reasons and kernel): no event lost' : `${diffs.length} differences:\n  ${diffs.slice(0, 20).join('\n  ')}`}`);
    if (diffs.length > 0) process.exitCode = 1;
  } finally {
    if (sampler) clearInterval(sampler);
    if (child.exitCode === null) child.kill();
    await run(['ip', 'netns', 'del', NETNS], { allowFailure: true });
  }
}

let agentPid: number | undefined;

process.on('SIGINT', () => {
  if (agentPid !== undefined) process.kill(agentPid);
  void run(['ip', 'netns', 'del', NETNS], { allowFailure: true }).then(() => process.exit(130));
});

main().catch(async (e: unknown) => {
  console.error(`bench/cluster: ${(e as Error).stack ?? String(e)}`);
  await run(['ip', 'netns', 'del', NETNS], { allowFailure: true });
  process.exit(1);
});
