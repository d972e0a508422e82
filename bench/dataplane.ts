// Data-plane benchmark: `npx tsx bench/dataplane.ts [--pods 10000] [--large 100000] [--seconds 2] [--rounds 9] [--slice-ms 250] [--pod-interfaces 'wp*'] [--pin 0,1] [--control]` (root).
//
// In namespaces this script creates (and removes, also on failure or Ctrl-C): two "nodes"
// joined by a veth, one pod on each, routed through the nodes' forward hooks. Three such
// topologies stand side by side, each with its ruleset loaded once: (a) no rules, (b) a
// conntrack-only table (the cost of being stateful at all) and (c) weir's ruleset for a
// synthetic cluster (bench/generate.ts: N pods, N/2 NetworkPolicies). Rounds alternate
// between them (iperf3 TCP throughput, new TCP connections per second in a bounded loop: each
// configuration's SECONDS in interleaved slices of --slice-ms), so the noise of a shared
// machine hits every configuration alike; each ratio is the median of the per-round ratios
// against (a) measured in the same round. Then (d) a naive per-pair rule
// list for the same policies (one rule per allowed pair, loaded up to a bound) replaces (c);
// and for weir: full apply time (render + nft) and one pod add from event to kernel. Last,
// the pod add again on one node of a `--large` cluster (N pods, N/2 policies; 0 skips it),
// whose table is loaded by the same agent path, to show the add does not grow with the table.
// Services (`--services N`, 0 skips): new connections through a ClusterIP with N Services × 5
// endpoints loaded against 1 Service (paired rounds, goal ≥ 0.95), and endpoint changes from
// the change to the kernel's ack (goal ≤ 20 ms).
//
// weir's agents render without a pod-interface wildcard by default (anti-spoofing: a source
// chain on the measured pods' veth, `wpod`, checks every packet, and weir's own rule new
// connections only; `--anti-spoofing rp-filter` has the agent turn on the kernel's strict
// reverse-path filter there instead); `--pod-interfaces 'wp*'` runs them as the lab does
// (unknown pod interfaces fail closed: a guard on every packet from and to pod interfaces).
//
// The headline is weir against the conntrack-only table, paired per round: on this kernel
// (no flowtables) conntrack is the floor of any stateful firewall, so that is the limit weir
// is held to (≥ 0.97). The no-rules row stays as information. `--control` adds a fourth copy, a
// second conntrack-only table: what the method reads between two identical copies.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, NetworkPolicy, Pod } from '../src/model/cluster.js';
import { PolicyEngine, allows, evaluatePair, podEndpoint } from '../src/policy/index.js';
import { NodeAgent } from '../src/agent/index.js';
import { fullScript, renderRuleset, rulesetStats, type LocalPod, type Ruleset } from '../src/render/index.js';
import { planServices, renderServices, serviceWeightPatch } from '../src/render/services.js';
import { Applier, nftRunner } from '../src/nft/apply.js';
import { netlinkElementWriter } from '../src/nft/element-writer.js';
import { serviceCluster } from './services-cluster.js';
import { run } from '../src/exec/run.js';
import { generateCluster } from './generate.js';

const { values } = parseArgs({ options: { pods: { type: 'string', default: '10000' }, seconds: { type: 'string', default: '2' }, 'naive-max': { type: 'string', default: '100000' }, rounds: { type: 'string', default: '9' }, large: { type: 'string', default: '100000' }, adds: { type: 'string', default: '9' }, services: { type: 'string', default: '10000' }, 'pod-interfaces': { type: 'string', default: '' }, pin: { type: 'string', default: '0,1' }, 'slice-ms': { type: 'string', default: '250' }, 'anti-spoofing': { type: 'string', default: 'source-chains' }, control: { type: 'boolean', default: false } } });
const SLICE_MS = Number(values['slice-ms']);
if (!(SLICE_MS >= 10)) {
  console.error(`bench/dataplane: --slice-ms: a number of milliseconds, at least 10, was expected; got "${values['slice-ms']}"`);
  process.exit(2);
}
const POD_INTERFACES = values['pod-interfaces'] || undefined;
// Anti-spoofing of established packets without a wildcard: weir's source chains (the default,
// where the kernel allows them) or the kernel's strict reverse-path filter (NodeAgentOptions.sourceChains).
if (values['anti-spoofing'] !== 'source-chains' && values['anti-spoofing'] !== 'rp-filter') {
  console.error(`bench/dataplane: --anti-spoofing: source-chains or rp-filter was expected; got "${values['anti-spoofing']}"`);
  process.exit(2);
}
const SOURCE_CHAINS = values['anti-spoofing'] === 'source-chains';
/** The agents' option: their default (source chains where the kernel keeps hooks by name), or the filter. */
const ANTI_SPOOFING = SOURCE_CHAINS ? {} : { sourceChains: false };
const SERVICES = Number(values.services);
const LARGE = Number(values.large);
const ADDS = Number(values.adds);
const POD_COUNT = Number(values.pods);
const SECONDS = Number(values.seconds);
const NAIVE_MAX = Number(values['naive-max']);
const NAIVE_TIME_BOUND_MS = 60_000;
const ROUNDS = Number(values.rounds);
// Client on one CPU, servers on another (`--pin ''` leaves placement to the scheduler): on a
// 2-CPU machine, where the scheduler puts iperf3 and its server from one round to the next
// moves a round's figure by ±15 %, more than the difference being measured.
const PIN = values.pin === '' || availableParallelism() < 2 ? undefined : values.pin.split(',');
const pinned = (which: 0 | 1, argv: string[]): string[] => (PIN ? ['taskset', '-c', PIN[which], ...argv] : argv);

const tag = randomBytes(2).toString('hex');
type Config = 'no rules' | 'conntrack only' | 'weir' | 'control';
interface Topo {
  n1: string;
  n2: string;
  p1: string;
  p2: string;
}
const topoNames = (c: string): Topo => ({ n1: `wbench${tag}${c}-n1`, n2: `wbench${tag}${c}-n2`, p1: `wbench${tag}${c}-p1`, p2: `wbench${tag}${c}-p2` });
// `--control`: a fourth copy, a second conntrack-only table measured in the same rounds. Its
// ratio against the first is what the method itself reads between two identical copies (its
// offset and spread), the yardstick for weir's figure.
const CONTROL = values.control === true;
const TOPO: Record<Config, Topo> = { 'no rules': topoNames('a'), 'conntrack only': topoNames('b'), weir: topoNames('c'), control: topoNames('d') };
const CONFIGS: readonly Config[] = CONTROL ? ['no rules', 'conntrack only', 'weir', 'control'] : ['no rules', 'conntrack only', 'weir'];
const created: string[] = [];
const pids: number[] = [];

async function sh(argv: string[], input?: string): Promise<string> {
  return (await run(argv, { input, timeoutMs: 300_000 })).stdout;
}
const inNs = (ns: string, argv: string[], input?: string) => sh(['ip', 'netns', 'exec', ns, ...argv], input);

async function cleanup(): Promise<void> {
  for (const pid of pids.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  for (const ns of created.splice(0)) await run(['ip', 'netns', 'del', ns], { allowFailure: true });
}

// ------------------------------------------------------------------ topology

/** The synthetic cluster, with two real pods: P1 (node 1) and P2 (node 2), same workload. */
function benchCluster(): { cluster: Cluster; src: Pod; dst: Pod } {
  const c = generateCluster({ pods: POD_COUNT, policiesPerPod: 0.5 });
  const src = c.pods[1];
  const dst = c.pods[2];
  // Ensure the measured flow is allowed and goes through policy chains on both sides: the
  // destination is isolated (ns-0 has a default deny) and this policy lets the source in.
  const allow: NetworkPolicy = {
    namespace: dst.namespace,
    name: 'bench-allow',
    podSelector: { matchLabels: { app: dst.labels.app } },
    policyTypes: ['Ingress'],
    ingress: [{ peers: [{ kind: 'selector', podSelector: { matchLabels: { app: src.labels.app } } }], ports: [{ protocol: 'TCP', port: 5201 }, { protocol: 'TCP', port: 5202 }] }],
    egress: [],
    mode: 'enforce',
  };
  const pods = c.pods.map((p, i) => ({ ...p, node: i % 2 === 1 ? 'n1' : 'n2' }));
  return { cluster: { ...c, pods, networkPolicies: [...c.networkPolicies, allow] }, src: pods[1], dst: pods[2] };
}

async function topology(NS: Topo, srcIp: string, dstIp: string): Promise<void> {
  for (const ns of Object.values(NS)) {
    await sh(['ip', 'netns', 'add', ns]);
    created.push(ns);
  }
  for (const n of [NS.n1, NS.n2]) {
    await inNs(n, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    await sh(['ip', '-n', n, 'link', 'set', 'lo', 'up']);
  }
  // The connection test opens up to ~18,000 connections a second: with the default 28,232
  // ephemeral ports the client would come back to a port of the same round, whose 4-tuple the
  // server still holds in TIME_WAIT. Twice as many ports keep every round's ports its own.
  await inNs(NS.p1, ['sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65535']);
  await sh(['ip', '-n', NS.n1, 'link', 'add', 'wire', 'type', 'veth', 'peer', 'name', 'wire', 'netns', NS.n2]);
  await sh(['ip', '-n', NS.n1, 'addr', 'add', '192.0.2.1/30', 'dev', 'wire']);
  await sh(['ip', '-n', NS.n2, 'addr', 'add', '192.0.2.2/30', 'dev', 'wire']);
  for (const [node, pod, ip, other, via] of [
    [NS.n1, NS.p1, srcIp, dstIp, '192.0.2.2'],
    [NS.n2, NS.p2, dstIp, srcIp, '192.0.2.1'],
  ] as const) {
    await sh(['ip', '-n', node, 'link', 'set', 'wire', 'up']);
    await sh(['ip', '-n', node, 'link', 'add', 'wpod', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', pod]);
    await sh(['ip', '-n', node, 'addr', 'add', '169.254.1.1/32', 'dev', 'wpod']);
    await sh(['ip', '-n', node, 'link', 'set', 'wpod', 'up']);
    await sh(['ip', '-n', node, 'route', 'add', `${ip}/32`, 'dev', 'wpod']);
    await sh(['ip', '-n', node, 'route', 'add', `${other}/32`, 'via', via]);
    await sh(['ip', '-n', pod, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    await sh(['ip', '-n', pod, 'link', 'set', 'eth0', 'up']);
    await sh(['ip', '-n', pod, 'link', 'set', 'lo', 'up']);
    await sh(['ip', '-n', pod, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
    await sh(['ip', '-n', pod, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0']);
  }
}

function background(ns: string, argv: string[]): void {
  const child = spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: 'ignore', detached: false });
  if (child.pid !== undefined) pids.push(child.pid);
}

const CONN_SERVER = `require('net').createServer((s) => { s.on('error', () => {}); s.end('x'); }).listen(5202, '0.0.0.0');`;
// New TCP connections to ip:5202 (the server, and a ClusterIP's port), 16 at a time, for `ms`:
// connections done, failures and the time they took (the last ones end just after `ms`).
const CONNECT_FOR = `
const net = require('net');
function connectFor(ip, ms) {
  const t0 = process.hrtime.bigint();
  const end = Date.now() + ms;
  let done = 0, failed = 0;
  function one() {
    if (Date.now() >= end) return Promise.resolve();
    return new Promise((resolve) => {
      const s = net.connect({ host: ip, port: 5202 });
      s.setTimeout(2000, () => { failed++; s.destroy(); resolve(); });
      s.on('error', () => { failed++; resolve(); });
      s.on('data', () => {});
      s.on('end', () => { done++; s.destroy(); resolve(); });
    }).then(one);
  }
  return Promise.all(Array.from({ length: 16 }, one)).then(() => ({ done, failed, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
}
`;
const CONN_CLIENT = `${CONNECT_FOR}
const [ip, seconds] = process.argv.slice(1);
connectFor(ip, Number(seconds) * 1000).then(({ done, failed }) => console.log(JSON.stringify({ rate: done / Number(seconds), failed })));
`;

async function measure(NS: Topo, dstIp: string): Promise<{ gbps: number; cps: number; failed: number }> {
  const gbps = await throughput(NS, dstIp);
  const conn = JSON.parse(await inNs(NS.p1, pinned(0, [process.execPath, '-e', CONN_CLIENT, dstIp, String(SECONDS)]))) as { rate: number; failed: number };
  // Let TIME_WAIT entries of this round not skew the next one.
  await flushConntrack(NS);
  return { gbps, cps: conn.rate, failed: conn.failed };
}

async function flushConntrack(NS: Topo): Promise<void> {
  await inNs(NS.n1, ['conntrack', '-F']).catch(() => '');
  await inNs(NS.n2, ['conntrack', '-F']).catch(() => '');
}

async function throughput(NS: Topo, dstIp: string): Promise<number> {
  const ipf = JSON.parse(await inNs(NS.p1, pinned(0, ['iperf3', '-c', dstIp, '-t', String(SECONDS), '-J']))) as { end: { sum_received: { bits_per_second: number } } };
  return ipf.end.sum_received.bits_per_second / 1e9;
}

// The rounds' connection test: one client per topology stays up (in its source pod, on the
// client CPU) and opens connections for a slice when told (`go <ms>` on stdin → one JSON line:
// connections done, failures, the slice's length as measured). A round gives each
// configuration SECONDS (rounded up to whole rotations) in slices of SLICE_MS, interleaved in a rotating order, so that two
// configurations' figures of one round are taken within a second of each other: the host's
// drift from second to second (this shared 2-vCPU machine moves one 2 s figure by ±8 %) hits
// them alike instead of landing on one of them.
const SLICE_CLIENT = `${CONNECT_FOR}
const ip = process.argv[1];
require('readline').createInterface({ input: process.stdin }).on('line', (line) => {
  connectFor(ip, Number(line.split(' ')[1])).then((r) => process.stdout.write(JSON.stringify(r) + '\\n'));
});
`;

interface SliceClient {
  slice(ms: number): Promise<{ done: number; failed: number; ms: number }>;
}

function sliceClient(NS: Topo, dstIp: string): SliceClient {
  const child = spawn('ip', ['netns', 'exec', NS.p1, ...pinned(0, [process.execPath, '-e', SLICE_CLIENT, dstIp])], { stdio: ['pipe', 'pipe', 'inherit'] });
  if (child.pid !== undefined) pids.push(child.pid);
  type Slice = { done: number; failed: number; ms: number };
  const waiting: { resolve: (r: Slice) => void; reject: (e: Error) => void }[] = [];
  let exited = false;
  let buffered = '';
  child.stdout.on('data', (d: Buffer) => {
    buffered += d.toString();
    for (let i = buffered.indexOf('\n'); i >= 0; i = buffered.indexOf('\n')) {
      const line = buffered.slice(0, i);
      buffered = buffered.slice(i + 1);
      waiting.shift()?.resolve(JSON.parse(line) as Slice);
    }
  });
  // A client that dies fails the slice it owed (and every later one) instead of hanging the bench.
  child.on('exit', (code, signal) => {
    exited = true;
    for (const w of waiting.splice(0)) w.reject(new Error(`connection client in ${NS.p1} exited (${signal ?? `code ${String(code)}`})`));
  });
  return {
    slice: (ms) =>
      new Promise((resolve, reject) => {
        if (exited) return reject(new Error(`connection client in ${NS.p1} exited`));
        waiting.push({ resolve, reject });
        child.stdin.write(`go ${ms}\n`);
      }),
  };
}

/** New connections per second of each configuration, over interleaved slices (see SLICE_CLIENT). */
async function connRates(clients: ReadonlyMap<Config, SliceClient>, order: readonly Config[]): Promise<Map<Config, { cps: number; failed: number }>> {
  // A whole number of rotations: each configuration takes each place in the rotation equally
  // often (8 slices over 3 configurations gave one of them the first place only twice).
  const slices = Math.max(1, Math.ceil((SECONDS * 1000) / SLICE_MS / order.length)) * order.length;
  const sum = new Map<Config, { done: number; failed: number; ms: number }>(order.map((c) => [c, { done: 0, failed: 0, ms: 0 }]));
  for (let s = 0; s < slices; s++) {
    for (let k = 0; k < order.length; k++) {
      const config = order[(k + s) % order.length];
      const r = await (clients.get(config) as SliceClient).slice(SLICE_MS);
      const acc = sum.get(config) as { done: number; failed: number; ms: number };
      acc.done += r.done;
      acc.failed += r.failed;
      acc.ms += r.ms;
    }
  }
  return new Map([...sum].map(([c, v]) => [c, { cps: (v.done * 1000) / v.ms, failed: v.failed }]));
}

// ------------------------------------------------------------------ rulesets

/** One rule per allowed (src, dst) pair on each node, like a naive per-pair firewall. */
function naiveScript(engine: PolicyEngine, cluster: Cluster, node: string, measured: { src: Pod; dst: Pod }): { script: string; rules: number; complete: boolean } {
  const rules: string[] = [];
  const started = Date.now();
  const locals = cluster.pods.filter((p) => p.node === node);
  const eps = new Map(cluster.pods.map((p) => [p, podEndpoint(engine, p)]));
  let complete = true;
  outer: for (const dst of locals) {
    for (const src of cluster.pods) {
      if (rules.length >= NAIVE_MAX || Date.now() - started > NAIVE_TIME_BOUND_MS) {
        complete = false;
        break outer;
      }
      if (src === dst || (src === measured.src && dst === measured.dst)) continue;
      const allowed = evaluatePair(engine, eps.get(src) as ReturnType<typeof podEndpoint>, eps.get(dst) as ReturnType<typeof podEndpoint>).allowed;
      if (allows(allowed, 'TCP', 80) || allowed.other) rules.push(`ip saddr ${src.ip} ip daddr ${dst.ip} accept`);
    }
  }
  // The measured pair last: a packet of an arbitrary pair walks the list.
  rules.push(`ip saddr ${measured.src.ip} ip daddr ${measured.dst.ip} tcp dport { 5201, 5202 } accept`);
  const script = [
    'add table inet naive',
    'delete table inet naive',
    'table inet naive {',
    '  chain pairs {',
    '    type filter hook forward priority filter; policy drop;',
    '    ct state established,related accept',
    ...rules.map((r) => `    ${r}`),
    '  }',
    '}',
    '',
  ].join('\n');
  return { script, rules: rules.length + 2, complete };
}

// ------------------------------------------------------------------ pod add

interface PodAddFigures {
  readonly ms: readonly number[];
  readonly median: number;
  /** CPU time (user + system, this process) of each add: what the add costs without waiting for a CPU. */
  readonly cpuMedian: number;
  readonly status: Awaited<ReturnType<NodeAgent['podAdded']>>;
}

/**
 * `ADDS` pod adds on `agent` (new replicas of `template`'s workload, local to the agent's node):
 * each from podAdded() to its return (the kernel acked), then read back from the kernel's
 * pod maps (`eg_pod`, `in_pod`) and removed again (not timed).
 */
async function podAdds(agent: NodeAgent, node: string, ns: string, template: Pod, vethPrefix: string): Promise<PodAddFigures> {
  const adds: { ms: number; cpu: number; status: PodAddFigures['status'] }[] = [];
  for (let i = 0; i < ADDS; i++) {
    const added: Pod = { ...template, name: `${template.name}-extra${i}`, ip: `10.250.0.${7 + i}`, node };
    // The pod's own host link (a bridge stands in: no dummy links here), made before the add is
    // timed: it exists, so the add writes its anti-spoofing elements (by index) and its source chain.
    const veth = `${vethPrefix}${i}`;
    await sh(['ip', '-n', ns, 'link', 'add', veth, 'type', 'bridge']);
    const c1 = process.cpuUsage();
    const t1 = performance.now();
    const status = await agent.podAdded(added, { key: `${added.namespace}/${added.name}`, ip: added.ip, hostVeth: veth });
    const ms = performance.now() - t1;
    const cpu = process.cpuUsage(c1);
    adds.push({ ms, cpu: (cpu.user + cpu.system) / 1000, status });
    if (!status.lastApplyOk) throw new Error(`pod add failed: ${status.error ?? ''}`);
    // `nft get element` of a 100k-pod table exits 1 with nothing on stderr (nft 1.0.6 fills its
    // cache with every set's elements first); listing the pod maps works at both sizes.
    const listed = (await inNs(ns, ['nft', 'list', 'map', 'inet', 'weir', 'eg_pod'])) + (await inNs(ns, ['nft', 'list', 'map', 'inet', 'weir', 'in_pod']));
    if (!listed.includes(`${added.ip} : 0x`)) throw new Error(`pod add not in the kernel: ${added.ip}`);
    await agent.podRemoved(added.namespace, added.name);
    await sh(['ip', '-n', ns, 'link', 'del', veth]);
  }
  const sorted = [...adds].sort((x, y) => x.ms - y.ms);
  const mid = sorted[Math.floor(sorted.length / 2)];
  const cpus = adds.map((a) => a.cpu).sort((x, y) => x - y);
  return { ms: adds.map((a) => a.ms), median: mid.ms, cpuMedian: cpus[Math.floor(cpus.length / 2)], status: mid.status };
}

const podAddLine = (label: string, f: PodAddFigures): string =>
  `pod add at ${label}, podAdded() → kernel acked (median of ${f.ms.length}: ${f.ms.map((x) => x.toFixed(1)).join('/')} ms): ${f.median.toFixed(1)} ms (${f.status.mode} via ${f.status.via ?? '?'}, in-process ${f.status.renderMs} ms, kernel ${f.status.applyMs} ms; CPU per add, median ${f.cpuMedian.toFixed(1)} ms)${f.status.fallback ? ` [fallback: ${f.status.fallback}]` : ''} (goal ≤ 10 ms)`;

// ------------------------------------------------------------------ services

const VIP = '10.96.0.10';

/**
 * New connections through a ClusterIP (VIP:5202 → the server pod, DNAT on the client's node)
 * with a table of 1 Service against one of `n` Services × 5 endpoints, on the two standing
 * topologies without weir (their conntrack-only table removed first), paired per round; then
 * endpoint changes on the large table (one endpoint's health flips: its Service's weight map
 * changes) from the change to the kernel's ack, through the applier's netlink element path.
 */
async function servicesBench(n: number, dstIp: string): Promise<{ lines: string[]; ratio?: number; changeMs?: number }> {
  const measured = { port: 5202, clusterIP: VIP, endpoints: [dstIp], ip: dstIp };
  const small = renderServices(planServices(serviceCluster(0, 5, measured), [], 'node-0'));
  const t0 = performance.now();
  const bigInput = planServices(serviceCluster(n, 5, measured), [], 'node-0');
  const big = renderServices(bigInput);
  const renderMs = performance.now() - t0;
  const one = TOPO['no rules'];
  const many = TOPO['conntrack only'];
  for (const node of [many.n1, many.n2]) await inNs(node, ['nft', 'delete', 'table', 'inet', 'wbench_ct']).catch(() => '');
  const oneApplier = new Applier(nftRunner(one.n1));
  const manyApplier = new Applier(nftRunner(many.n1), netlinkElementWriter(many.n1));
  try {
    const a = await oneApplier.apply(small);
    const t1 = performance.now();
    const b = await manyApplier.apply(big);
    const loadMs = performance.now() - t1;
    const st = rulesetStats(big);
    const lines = [`${n} Services × 5 endpoints (+1 measured) on the client's node: ${st.rules} rules, ${st.chains} chains, ${st.sets} sets/maps, ${st.elements} elements; plan + render ${(renderMs / 1000).toFixed(1)} s, nft -f load ${(loadMs / 1000).toFixed(1)} s${b.ok ? '' : ` FAILED: ${b.error ?? ''}`}`];
    if (!a.ok || !b.ok) return { lines: [...lines, `1-Service load: ${a.ok ? 'ok' : `FAILED: ${a.error ?? ''}`}`] };
    const rate = async (t: Topo) => (JSON.parse(await inNs(t.p1, [process.execPath, '-e', CONN_CLIENT, VIP, String(SECONDS)])) as { rate: number; failed: number });
    const ratios: number[] = [];
    const rates: string[] = [];
    let failed = 0;
    for (let round = 0; round < Math.max(ROUNDS, 1); round++) {
      const order = round % 2 === 0 ? [one, many] : [many, one];
      const got = new Map<Topo, number>();
      for (const t of order) {
        const r = await rate(t);
        failed += r.failed;
        got.set(t, r.rate);
        await flushConntrack(t);
      }
      ratios.push((got.get(many) ?? 0) / (got.get(one) ?? 1));
      rates.push(`${Math.round(got.get(one) ?? 0)}/${Math.round(got.get(many) ?? 0)}`);
    }
    const sorted = [...ratios].sort((x, y) => x - y);
    const ratio = sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
    lines.push(`ClusterIP new conn/s, ${n} Services vs 1 Service (median of ${ratios.length} paired rounds; 1/${n} conn/s per round: ${rates.join(', ')}${failed ? `; ${failed} conn failures` : ''}): ${ratio.toFixed(3)} (goal ≥ 0.95)`);
    // Endpoint changes: one endpoint of one Service fails its health check (or recovers).
    const times: number[] = [];
    const inWeir: number[] = [];
    const vias = new Set<string>();
    let applied: Ruleset = manyApplier.applied as Ruleset;
    for (let round = 0; round < 9; round++) {
      // Even rounds fail an endpoint, odd rounds bring the same one back: every round a change.
      const svc = bigInput.services[(Math.floor(round / 2) * 997) % n];
      const ep = svc.ports[0].endpoints[0];
      const t = performance.now();
      const next = serviceWeightPatch(applied, { ...bigInput, health: new Map([[ep.key, round % 2 === 1]]) }, new Set([svc.key]));
      if (!next?.patch) throw new Error('endpoint change did not take the element path');
      inWeir.push(performance.now() - t);
      const r = await manyApplier.apply(next);
      times.push(performance.now() - t);
      if (!r.ok) throw new Error(`endpoint change failed: ${r.error ?? ''}`);
      vias.add(`${r.mode} via ${r.via ?? '?'}${r.fallback ? ` [fallback: ${r.fallback}]` : ''}`);
      applied = manyApplier.applied as Ruleset;
    }
    const med = (xs: number[]) => [...xs].sort((x, y) => x - y)[xs.length >> 1];
    lines.push(`endpoint change → kernel acked (weight map elements, median of 9: ${times.map((x) => x.toFixed(1)).join('/')} ms): ${med(times).toFixed(1)} ms (${[...vias].join(', ')}; in weir ${med(inWeir).toFixed(1)} ms) (goal ≤ 20 ms)`);
    return { lines, ratio, changeMs: med(times) };
  } finally {
    oneApplier.close();
    manyApplier.close();
    await inNs(one.n1, ['nft', 'delete', 'table', 'inet', 'weir']).catch(() => '');
    await inNs(many.n1, ['nft', 'delete', 'table', 'inet', 'weir']).catch(() => '');
  }
}

/** The `--large` cluster on one node: full apply through the agent, then pod adds. */
async function large(pods: number): Promise<{ lines: string[]; podAdd?: PodAddFigures }> {
  const lines: string[] = [];
  const t0 = performance.now();
  const c = generateCluster({ pods, policiesPerPod: 0.5 });
  const all = c.pods.map((p, i) => ({ ...p, node: i % 2 === 1 ? 'n1' : 'n2' }));
  const cluster = { ...c, pods: all };
  const ns = `wbench${tag}L-n2`;
  await sh(['ip', 'netns', 'add', ns]);
  created.push(ns);
  const agent = new NodeAgent({ node: 'n2', netns: ns, ...ANTI_SPOOFING });
  const local = all.filter((p) => p.node === 'n2').map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip }));
  const genMs = performance.now() - t0;
  const t1 = performance.now();
  const st = await agent.sync(cluster, local);
  const syncMs = performance.now() - t1;
  const rss = process.memoryUsage().rss / 2 ** 20;
  lines.push(
    `${pods} pods, ${c.networkPolicies.length} NetworkPolicies on one node: full apply (engine + render + nft) ${(syncMs / 1000).toFixed(1)} s (in-process ${(st.renderMs / 1000).toFixed(1)} s, nft ${(st.applyMs / 1000).toFixed(1)} s; generator ${(genMs / 1000).toFixed(1)} s; bench RSS ${Math.round(rss)} MiB): ${st.lastApplyOk ? `${st.rules} rules, ${st.chains} chains, ${st.sets} sets, ${st.setElements} elements` : `FAILED: ${st.error ?? ''}`}`,
  );
  if (!st.lastApplyOk) return { lines };
  const template = all[2];
  const podAdd = await podAdds(agent, 'n2', ns, template, 'wadd');
  lines.push(podAddLine(`${pods} pods`, podAdd));
  await inNs(ns, ['nft', 'delete', 'table', 'inet', 'weir']);
  await inNs(ns, ['nft', 'delete', 'table', 'inet', 'weir_src']).catch(() => '');
  await sh(['ip', 'netns', 'del', ns]);
  created.splice(created.indexOf(ns), 1);
  return { lines, podAdd };
}

async function main(): Promise<void> {
  const onSignal = () => {
    void cleanup().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const { cluster, src, dst } = benchCluster();
  console.error(`synthetic cluster: ${cluster.pods.length} pods, ${cluster.networkPolicies.length} NetworkPolicies; measured ${src.namespace}/${src.name} (${src.ip}) → ${dst.namespace}/${dst.name} (${dst.ip})`);
  for (const t of CONFIGS.map((c) => TOPO[c])) {
    await topology(t, src.ip as string, dst.ip as string);
    background(t.p2, pinned(1, ['iperf3', '-s']));
    background(t.p2, pinned(1, [process.execPath, '-e', CONN_SERVER]));
  }
  await sleep(500);

  const rows: { name: string; gbps: number; cps: number; gbpsRatio: number; cpsRatio: number; rules: number; elements: number; note: string }[] = [];

  // (c) weir: synced through the agents (timed) into its own topology's nodes.
  // The measured pods' host veth is `wpod` on both nodes: the anti-spoofing check is in the path.
  const NS = TOPO.weir;
  const localOf = (node: string): LocalPod[] =>
    cluster.pods.filter((p) => p.node === node).map((p) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip, ...(p === src || p === dst ? { hostVeth: 'wpod' } : {}) }));
  const agents = { n1: new NodeAgent({ node: 'n1', netns: NS.n1, podInterfaces: POD_INTERFACES, ...ANTI_SPOOFING }), n2: new NodeAgent({ node: 'n2', netns: NS.n2, podInterfaces: POD_INTERFACES, ...ANTI_SPOOFING }) };
  const t0 = performance.now();
  const s1 = await agents.n1.sync(cluster, localOf('n1'));
  const fullMs = performance.now() - t0;
  const s2 = await agents.n2.sync(cluster, localOf('n2'));
  if (!s1.lastApplyOk || !s2.lastApplyOk) throw new Error(`weir apply failed: ${s1.error ?? s2.error ?? ''}`);
  // (b) A minimal stateful firewall: conntrack on, established accepted, nothing else. It
  // separates what conntrack itself costs from what weir's rules cost.
  const CT_ONLY = 'table inet wbench_ct {\n chain ctonly {\n  type filter hook forward priority filter; policy accept;\n  ct state established,related accept\n  ct state invalid drop\n }\n}\n';
  for (const c of CONFIGS.filter((x) => x === 'conntrack only' || x === 'control')) for (const n of [TOPO[c].n1, TOPO[c].n2]) await inNs(n, ['nft', '-f', '-'], CT_ONLY);

  // Alternating rounds over the standing topologies.
  const samples = new Map<Config, { gbps: number; cps: number; failed: number }[]>();
  // Every rotation of the configurations, forwards and backwards: each takes each place equally
  // often (for three, these are all six orders).
  const rotations = CONFIGS.map((_, k) => [...CONFIGS.slice(k), ...CONFIGS.slice(0, k)]);
  const orders: Config[][] = rotations.flatMap((r) => [r, [...r].reverse()]);
  const clients = new Map<Config, SliceClient>(CONFIGS.map((c) => [c, sliceClient(TOPO[c], dst.ip as string)]));
  // A first slice each, unrecorded: the clients' start (and first connections) out of the rounds.
  if (ROUNDS > 0) for (const c of CONFIGS) await (clients.get(c) as SliceClient).slice(200);
  for (let round = 0; round < ROUNDS; round++) {
    const order = orders[round % orders.length];
    const gbps = new Map<Config, number>();
    for (const config of order) gbps.set(config, await throughput(TOPO[config], dst.ip as string));
    const conns = await connRates(clients, order);
    // Let TIME_WAIT entries of this round not skew the next one.
    for (const config of order) await flushConntrack(TOPO[config]);
    for (const config of order) {
      const c = conns.get(config) as { cps: number; failed: number };
      samples.set(config, [...(samples.get(config) ?? []), { gbps: gbps.get(config) as number, cps: c.cps, failed: c.failed }]);
    }
  }
  const mid = (xs: readonly number[]): number => {
    const sorted = [...xs].sort((p, q) => p - q);
    const n = sorted.length;
    return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  };
  /** x over y, round by round. */
  const ratios = (x: Config, y: Config, k: 'gbps' | 'cps'): number[] => {
    const ys = samples.get(y) ?? [];
    return (samples.get(x) ?? []).map((v, r) => v[k] / ys[r][k]);
  };
  const paired = (x: Config, y: Config, k: 'gbps' | 'cps'): number => mid(ratios(x, y, k));
  const median = (config: Config) => {
    const xs = samples.get(config) ?? [];
    // Paired: each round's value over the no-rules value of the same round.
    return { gbps: mid(xs.map((x) => x.gbps)), cps: mid(xs.map((x) => x.cps)), gbpsRatio: paired(config, 'no rules', 'gbps'), cpsRatio: paired(config, 'no rules', 'cps'), failed: xs.reduce((n, x) => n + x.failed, 0) };
  };
  /** The middle half of the per-round ratios: how far one round's figure moves. */
  const spread = (x: Config, y: Config, k: 'gbps' | 'cps'): string => {
    const r = ratios(x, y, k).sort((p, q) => p - q);
    return r.length < 4 ? '' : ` [rounds' middle half ${r[Math.floor(r.length / 4)].toFixed(2)}–${r[Math.floor((3 * r.length) / 4)].toFixed(2)}]`;
  };
  const note = (config: Config) => {
    const xs = samples.get(config) ?? [];
    const f = median(config).failed;
    return `${xs.length} rounds: ${xs.map((x) => x.gbps.toFixed(1)).join('/')} Gbit/s, ${xs.map((x) => Math.round(x.cps)).join('/')} conn/s${f ? `; ${f} conn failures` : ''}`;
  };
  const a = median('no rules');
  rows.push({ name: 'no rules', ...a, rules: 0, elements: 0, note: note('no rules') });
  const ct = median('conntrack only');
  const b = median('weir');
  rows.push({ name: 'conntrack only', ...ct, rules: 2, elements: 0, note: note('conntrack only') });
  rows.push({ name: 'weir', ...b, rules: s2.rules, elements: s2.setElements, note: note('weir') });
  if (CONTROL) rows.push({ name: 'control', ...median('control'), rules: 2, elements: 0, note: `a second conntrack-only copy; ${note('control')}` });

  // Pod add (a new replica of an existing workload on n2): from the event (podAdded) to the
  // kernel's ack, verified by reading the element back from the kernel.
  const podAdd = await podAdds(agents.n2, 'n2', NS.n2, cluster.pods[2], 'wadd');
  // And a full render alone, for the record.
  const engine = agents.n2.engine;
  const t2 = performance.now();
  const rs = renderRuleset({ engine, localPods: localOf('n2') });
  const renderMs = performance.now() - t2;
  const scriptBytes = fullScript(rs).length;
  for (const n of [NS.n1, NS.n2]) for (const table of ['weir', 'weir_src']) await inNs(n, ['nft', 'delete', 'table', 'inet', table]).catch(() => '');

  // (d) naive per-pair list, in place of weir; its ratio against a no-rules run right after.
  // `--naive-max 0` or `--rounds 0` (no traffic) skips it.
  if (NAIVE_MAX > 0 && ROUNDS > 0) {
    const naiveEngine = new PolicyEngine(cluster);
    const tn = performance.now();
    const naive1 = naiveScript(naiveEngine, cluster, 'n1', { src, dst });
    const naive2 = naiveScript(naiveEngine, cluster, 'n2', { src, dst });
    const genMs = performance.now() - tn;
    const tl = performance.now();
    await inNs(NS.n1, ['nft', '-f', '-'], naive1.script);
    await inNs(NS.n2, ['nft', '-f', '-'], naive2.script);
    const naiveLoadMs = performance.now() - tl;
    const c = await measure(NS, dst.ip as string);
    const cBase = await measure(TOPO['no rules'], dst.ip as string);
    rows.push({
      name: 'naive per-pair',
      ...c,
      gbpsRatio: c.gbps / cBase.gbps,
      cpsRatio: c.cps / cBase.cps,
      rules: naive2.rules,
      elements: 0,
      note: `${naive2.complete ? 'complete' : `bounded at ${naive2.rules} rules (of ~${(cluster.pods.length / 2) * cluster.pods.length} pairs)`}; gen ${Math.round(genMs)} ms, load ${Math.round(naiveLoadMs)} ms`,
    });
  }

  const svc = SERVICES > 0 ? await servicesBench(SERVICES, dst.ip as string) : { lines: ['(--services 0: no Services)'] } as { lines: string[]; ratio?: number; changeMs?: number };

  // The large cluster last: its table and engine stay out of the throughput rounds.
  const big = LARGE > 0 ? await large(LARGE) : { lines: [`(--large 0: no large cluster)`] };

  const pad = (s: string, n: number) => s.padEnd(n);
  const vsCt = { gbps: paired('weir', 'conntrack only', 'gbps'), cps: paired('weir', 'conntrack only', 'cps') };
  const lines = [
    `weir vs conntrack only (median of ${ROUNDS} paired rounds): conn/s ${vsCt.cps.toFixed(3)}${spread('weir', 'conntrack only', 'cps')}, throughput ${vsCt.gbps.toFixed(3)}${spread('weir', 'conntrack only', 'gbps')} (goal ≥ 0.97 each; ${PIN ? `client on CPU ${PIN[0]}, servers on CPU ${PIN[1]}` : 'unpinned'})`,
    ...(CONTROL
      ? [`control, a second conntrack-only copy vs the first (the method's own reading of two identical copies): conn/s ${paired('control', 'conntrack only', 'cps').toFixed(3)}${spread('control', 'conntrack only', 'cps')}, throughput ${paired('control', 'conntrack only', 'gbps').toFixed(3)}${spread('control', 'conntrack only', 'gbps')}`]
      : []),
    '',
    `${pad('ruleset', 16)}${pad('TCP Gbit/s', 12)}${pad('/no rules', 10)}${pad('conn/s', 10)}${pad('/no rules', 10)}${pad('rules', 10)}${pad('elements', 10)}note`,
    ...rows.map(
      (r) =>
        `${pad(r.name, 16)}${pad(r.gbps.toFixed(2), 12)}${pad(r.gbpsRatio.toFixed(3), 10)}${pad(Math.round(r.cps).toString(), 10)}${pad(r.cpsRatio.toFixed(3), 10)}${pad(String(r.rules), 10)}${pad(String(r.elements), 10)}${r.note}`,
    ),
    '',
    `weir on node 2 (pod interfaces ${POD_INTERFACES ? `"${POD_INTERFACES}"` : `without a wildcard; anti-spoofing of established packets: ${agents.n2.sourceChains ? 'source chains' : 'strict reverse-path filter'}`}): ${s2.rules} rules, ${s2.chains} chains, ${s2.sets} sets, ${s2.setElements} elements, ${s2.counters} reasons counted in one \`hits\` set; script ${(scriptBytes / 1e6).toFixed(1)} MB`,
    `rules per policy: ${(s2.rules / cluster.networkPolicies.length).toFixed(2)} (goal ≤ 20)`,
    `full apply, ${cluster.pods.length} pods (engine + render + nft, node 1): ${Math.round(fullMs)} ms (render alone, warm: ${Math.round(renderMs)} ms; nft: ${Math.round(s1.applyMs)} ms) (goal ≤ 2000 ms)`,
    podAddLine(`${cluster.pods.length} pods`, podAdd),
    ...svc.lines,
    ...big.lines,
  ];
  const goal = (name: string, ok: boolean, value: string) => `${name} ${ok ? 'met' : 'MISSED'} (${value})`;
  const perPolicy = s2.rules / cluster.networkPolicies.length;
  lines.push(
    `goals: ${[
      goal('conn/s ≥ 0.97 of conntrack only', vsCt.cps >= 0.97, vsCt.cps.toFixed(3)),
      goal('throughput ≥ 0.97 of conntrack only', vsCt.gbps >= 0.97, vsCt.gbps.toFixed(3)),
      goal(`pod add ≤ 10 ms at ${cluster.pods.length}`, podAdd.median <= 10, `${podAdd.median.toFixed(1)} ms`),
      ...(big.podAdd ? [goal(`pod add ≤ 10 ms at ${LARGE}`, big.podAdd.median <= 10, `${big.podAdd.median.toFixed(1)} ms`)] : LARGE > 0 ? [`pod add at ${LARGE} NOT MEASURED`] : []),
      goal('full apply ≤ 2 s', fullMs <= 2000, `${Math.round(fullMs)} ms`),
      ...(svc.ratio !== undefined ? [goal(`ClusterIP conn/s with ${SERVICES} Services ≥ 0.95 of 1 Service`, svc.ratio >= 0.95, svc.ratio.toFixed(3))] : SERVICES > 0 ? ['Services NOT MEASURED'] : []),
      ...(svc.changeMs !== undefined ? [goal('endpoint change ≤ 20 ms', svc.changeMs <= 20, `${svc.changeMs.toFixed(1)} ms`)] : []),
      goal('rules/policy ≤ 20', perPolicy <= 20, perPolicy.toFixed(2)),
    ].join('; ')}`,
  );
  console.log(lines.join('\n'));
}

try {
  await main();
} finally {
  await cleanup();
}
