// bench/analyze: full analysis time, peak memory, explain latency and incremental update time
// for synthetic clusters of 1k, 10k and 50k pods (1 policy per 2 pods, namespaces of 20 pods).
// Each size runs in its own process so that peak memory is that size's alone. The baseline,
// measured in the same run, is a naive pairwise analyzer: every policy evaluated for every pod
// pair with selectors matched on the fly (timed on a sample of pairs and scaled to all pairs).
//
//   npx tsx bench/analyze.ts                 # 1k, 10k, 50k
//   npx tsx bench/analyze.ts --sizes 1000,10000
//   npx tsx bench/analyze.ts --diff-only     # only the `weir diff` block (two 10k-pod versions)

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { cpus } from 'node:os';
import type { Cluster, NetworkPolicy, Pod } from '../src/model/cluster.js';
import { PolicyEngine, analyze, explain, isEmpty, matchesSelector } from '../src/index.js';
import { diffConnectivity } from '../src/analyze/diff.js';
import { rng } from '../src/synthetic/random.js';
import { generateCluster } from './generate.js';

interface Figures {
  pods: number;
  policies: number;
  identities: number;
  classes: number;
  buildMs: number;
  analyzeMs: number;
  peakRssMiB: number;
  explainUs: number;
  incrementalUs: number;
  allowedPairs: number;
  baselinePairUs: number;
  baselineEstimateMs: number;
}

/** The naive baseline: does policy p allow src → dst on some port (ingress side only)? */
function naiveAllowed(cluster: Cluster, nsLabels: Map<string, Record<string, string>>, src: Pod, dst: Pod): boolean {
  let isolated = false;
  let allowed = false;
  for (const p of cluster.networkPolicies as NetworkPolicy[]) {
    if (p.namespace !== dst.namespace || !p.policyTypes.includes('Ingress') || !matchesSelector(p.podSelector, dst.labels)) continue;
    isolated = true;
    for (const r of p.ingress) {
      if (r.peers.length === 0) allowed = true;
      for (const peer of r.peers) {
        if (peer.kind !== 'selector') continue;
        const nsOk = peer.namespaceSelector
          ? matchesSelector(peer.namespaceSelector, nsLabels.get(src.namespace) ?? {})
          : src.namespace === p.namespace;
        if (nsOk && matchesSelector(peer.podSelector ?? {}, src.labels)) allowed = true;
      }
    }
  }
  return !isolated || allowed;
}

function measure(size: number): Figures {
  const cluster = generateCluster({ pods: size, seed: 7 });
  let t = performance.now();
  const engine = new PolicyEngine(cluster);
  const buildMs = performance.now() - t;

  t = performance.now();
  const result = analyze(engine);
  const analyzeMs = performance.now() - t;
  let allowedPairs = 0;
  const n = result.classes.length;
  for (let i = 0; i < n * n; i++) if (!isEmpty(result.conns.get(result.matrix[i]))) allowedPairs++;

  const identities = engine.identities().length;
  const rand = rng(11);
  const pods = cluster.pods;
  const key = (p: Pod) => `${p.namespace}/${p.name}`;
  const explainRuns = 2000;
  t = performance.now();
  for (let i = 0; i < explainRuns; i++) {
    const a = pods[Math.floor(rand() * pods.length)];
    const b = pods[Math.floor(rand() * pods.length)];
    explain(engine, key(a), key(b), 'TCP', 8080);
  }
  const explainUs = ((performance.now() - t) / explainRuns) * 1000;

  // One pod label change, applied incrementally: identity change, selector cache, policy
  // membership, and the recompiled programs of the identity it moves to.
  const updates = 300;
  t = performance.now();
  for (let i = 0; i < updates; i++) {
    const p = pods[Math.floor(rand() * pods.length)];
    const moved: Pod = { ...p, labels: { ...p.labels, tier: i % 2 === 0 ? 'db' : 'web', canary: `${i % 3}` } };
    engine.upsertPod(moved);
    const id = engine.identityOfPod(key(moved));
    if (id) {
      engine.program(id.id, 'ingress');
      engine.program(id.id, 'egress');
    }
  }
  const incrementalUs = ((performance.now() - t) / updates) * 1000;

  const nsLabels = new Map(cluster.namespaces.map((ns) => [ns.name, { ...ns.labels }]));
  const samples = 20000;
  t = performance.now();
  let sink = 0;
  for (let i = 0; i < samples; i++) {
    const a = pods[Math.floor(rand() * pods.length)];
    const b = pods[Math.floor(rand() * pods.length)];
    if (naiveAllowed(cluster, nsLabels, a, b)) sink++;
  }
  const baselinePairUs = ((performance.now() - t) / samples) * 1000;
  if (sink < 0) console.log(sink);

  return {
    pods: size,
    policies: cluster.networkPolicies.length,
    identities,
    classes: n,
    buildMs,
    analyzeMs,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    explainUs,
    incrementalUs,
    allowedPairs,
    baselinePairUs,
    baselineEstimateMs: (baselinePairUs * size * size) / 1000,
  };
}

// ------------------------------------------------------------------ weir diff (issue 8)
//
// `weir diff` of two versions of the 10k-pod cluster: the second changes 1 % of the policies (a
// port), adds a namespace of 20 pods and removes another. Goal: ≤ 2× one analysis (build +
// analyze of one version), both timed in the same child process.

interface DiffFigures {
  pods: number;
  analysisMs: number;
  diffMs: number;
  diffLines: number;
}

function secondVersion(c: Cluster): Cluster {
  const changed = c.networkPolicies.map((p, i) =>
    i % 100 === 0 && p.ingress.length > 0
      ? { ...p, ingress: p.ingress.map((r) => ({ ...r, ports: r.ports.map((x) => (x.port === 8080 ? { ...x, port: 8443 } : x)) })) }
      : p,
  );
  const extra = generateCluster({ pods: 20, seed: 99 });
  const rename = (ns: string) => (ns === 'ns-0' ? 'ns-new' : ns);
  const added: Pod[] = extra.pods.map((p, i) => ({ ...p, namespace: rename(p.namespace), ip: `10.250.0.${i + 1}`, workload: p.workload.replace('ns-0/', 'ns-new/') }));
  return {
    ...c,
    namespaces: [...c.namespaces.filter((n) => n.name !== 'ns-1'), { name: 'ns-new', labels: { 'kubernetes.io/metadata.name': 'ns-new', team: 'team-new', env: 'dev' } }],
    pods: [...c.pods.filter((p) => p.namespace !== 'ns-1'), ...added],
    networkPolicies: changed.filter((p) => p.namespace !== 'ns-1'),
  };
}

function measureDiff(size: number): DiffFigures {
  const v1 = generateCluster({ pods: size, seed: 7 });
  const v2 = secondVersion(v1);
  let t = performance.now();
  analyze(new PolicyEngine(v1));
  const analysisMs = performance.now() - t;
  t = performance.now();
  const d = diffConnectivity(new PolicyEngine(v1), new PolicyEngine(v2));
  const diffMs = performance.now() - t;
  return { pods: size, analysisMs, diffMs, diffLines: d.lines.length };
}

function diffBlock(self: string): void {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--max-old-space-size=8192', self, '--diff-child', '10000'], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  const r = JSON.parse(out) as DiffFigures;
  const ratio = r.diffMs / r.analysisMs;
  console.log('');
  console.log('weir diff of two 10k-pod versions (1 % of policies changed, a namespace added, one removed):');
  console.log(`| pods | one analysis ms | diff ms | ratio | diff lines |`);
  console.log('|---:|---:|---:|---:|---:|');
  console.log(`| ${r.pods} | ${r.analysisMs.toFixed(1)} | ${r.diffMs.toFixed(1)} | ${ratio.toFixed(2)}× | ${r.diffLines} |`);
  console.log(`goal (10k): diff ≤ 2× one analysis: ${ratio <= 2 ? 'met' : 'MISSED'} (${ratio.toFixed(2)}×)`);
}

function main(): void {
  const args = process.argv.slice(2);
  const diffChild = args.indexOf('--diff-child');
  if (diffChild >= 0) {
    process.stdout.write(JSON.stringify(measureDiff(Number(args[diffChild + 1]))));
    return;
  }
  if (args.includes('--diff-only')) {
    diffBlock(fileURLToPath(import.meta.url));
    return;
  }
  const childSize = args.indexOf('--child');
  if (childSize >= 0) {
    process.stdout.write(JSON.stringify(measure(Number(args[childSize + 1]))));
    return;
  }
  const sizesArg = args.indexOf('--sizes');
  const sizes = sizesArg >= 0 ? args[sizesArg + 1].split(',').map(Number) : [1000, 10000, 50000];
  const self = fileURLToPath(import.meta.url);
  console.log(`weir bench/analyze — ${cpus()[0]?.model ?? 'unknown CPU'} × ${cpus().length}, Node ${process.version}`);
  const rows: Figures[] = [];
  for (const size of sizes) {
    const out = execFileSync(process.execPath, ['--import', 'tsx', '--max-old-space-size=8192', self, '--child', String(size)], {
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    rows.push(JSON.parse(out) as Figures);
  }
  const f = (x: number, d = 1) => x.toFixed(d);
  console.log(
    '| pods | policies | identities | classes | build ms | analyze ms | build+analyze ms | peak RSS MiB | explain µs | incremental µs | naive pairwise est. ms | speed-up |',
  );
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows) {
    const total = r.buildMs + r.analyzeMs;
    console.log(
      `| ${r.pods} | ${r.policies} | ${r.identities} | ${r.classes} | ${f(r.buildMs)} | ${f(r.analyzeMs)} | ${f(total)} | ${f(r.peakRssMiB, 0)} | ${f(r.explainUs)} | ${f(r.incrementalUs)} | ${f(r.baselineEstimateMs, 0)} | ${f(r.baselineEstimateMs / total)}× |`,
    );
  }
  const ten = rows.find((r) => r.pods === 10000);
  if (ten) {
    const total = ten.buildMs + ten.analyzeMs;
    console.log(
      `goals (10k): analysis ≤ 2000 ms: ${total <= 2000 ? 'met' : 'MISSED'} (${f(total)}); memory ≤ 1024 MiB: ${ten.peakRssMiB <= 1024 ? 'met' : 'MISSED'} (${f(ten.peakRssMiB, 0)}); explain ≤ 1000 µs: ${ten.explainUs <= 1000 ? 'met' : 'MISSED'}; incremental ≤ 5000 µs: ${ten.incrementalUs <= 5000 ? 'met' : 'MISSED'}`,
    );
  }
  if (sizes.includes(10000)) diffBlock(self);
}

main();
