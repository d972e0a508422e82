// bench/lb-scale — the service NAT section at scale (root):
//   sudo npx tsx bench/lb-scale.ts [--services 10000] [--endpoints 5]
//
// Renders N Services × M endpoints for one node, loads the table into a scratch namespace,
// then changes one Service's weights (an endpoint fails its health check) and times the
// element-only update from the change to `nft` returning. Prints rules, elements, the full load
// and the update times (median of 9).

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { serviceCluster } from './services-cluster.js';
import { fullScript, rulesetStats } from '../src/render/index.js';
import { planServices, renderServices, serviceWeightPatch } from '../src/render/services.js';
import { patchScript } from '../src/render/script.js';
import type { Ruleset } from '../src/render/ruleset.js';
import { Applier, nftRunner } from '../src/nft/apply.js';
import { netlinkElementWriter } from '../src/nft/element-writer.js';

const { values } = parseArgs({ options: { services: { type: 'string', default: '10000' }, endpoints: { type: 'string', default: '5' } } });
const N = Number(values.services);
const M = Number(values.endpoints);

function run(argv: string[], input?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { maxBuffer: 1 << 28 }, (e, _o, err) => (e ? reject(new Error(`${argv.join(' ')}: ${err}`)) : resolve()));
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

async function main(): Promise<void> {
  const cluster = serviceCluster(N, M);
  let t = performance.now();
  const input = planServices(cluster, [], 'node-0');
  const rs = renderServices(input);
  const renderMs = performance.now() - t;
  const stats = rulesetStats(rs);
  const netns = `weir-b${randomBytes(2).toString('hex')}-scale`;
  await run(['ip', 'netns', 'add', netns]);
  // A bench stopped by a signal still removes its namespace.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => void run(['ip', 'netns', 'del', netns]).finally(() => process.exit(130)));
  }
  try {
    t = performance.now();
    await run(['ip', 'netns', 'exec', netns, 'nft', '-f', '-'], fullScript(rs));
    const loadMs = performance.now() - t;
    const times: number[] = [];
    const inWeir: number[] = [];
    const netlinkTimes: number[] = [];
    let applied = rs;
    for (let round = 0; round < 9; round++) {
      // One endpoint of one Service fails (or recovers): its weight map changes.
      const svc = input.services[(Math.floor(round / 2) * 997) % N];
      const ep = svc.ports[0].endpoints[0];
      t = performance.now();
      const next = serviceWeightPatch(applied, { ...input, health: new Map([[ep.key, round % 2 === 1]]) }, new Set([svc.key]));
      if (!next?.patch) throw new Error('weight change did not take the element path');
      const script = patchScript(next, next.patch).script;
      inWeir.push(performance.now() - t);
      await run(['ip', 'netns', 'exec', netns, 'nft', '-f', '-'], script);
      times.push(performance.now() - t);
      applied = next;
    }
    // The same changes through the applier's netlink element path (what the agent uses).
    const applier = new Applier(nftRunner(netns), netlinkElementWriter(netns));
    try {
      await applier.apply(applied);
      for (let round = 0; round < 9; round++) {
        const svc = input.services[(Math.floor(round / 2) * 991 + 1) % N];
        const ep = svc.ports[0].endpoints[0];
        t = performance.now();
        const next = serviceWeightPatch(applier.applied as Ruleset, { ...input, health: new Map([[ep.key, round % 2 === 1]]) }, new Set([svc.key]));
        if (!next?.patch) throw new Error('weight change did not take the element path');
        const r = await applier.apply(next);
        if (!r.ok || r.via !== 'netlink') throw new Error(`weight change not applied through netlink: ${r.error ?? r.fallback ?? r.via ?? ''}`);
        netlinkTimes.push(performance.now() - t);
      }
    } finally {
      applier.close();
    }
    console.log(`service NAT section, ${N.toLocaleString('en')} Services × ${M} endpoints, one node`);
    console.log(`rules ${stats.rules.toLocaleString('en')}, chains ${stats.chains.toLocaleString('en')}, sets/maps ${stats.sets.toLocaleString('en')}, elements ${stats.elements.toLocaleString('en')}`);
    console.log(`plan + render: ${renderMs.toFixed(0)} ms; full load (nft -f): ${loadMs.toFixed(0)} ms`);
    console.log(`weight change → kernel through nft -f (element update, median of 9): ${median(times).toFixed(1)} ms (in weir: ${median(inWeir).toFixed(1)} ms)`);
    console.log(`weight change → kernel through netlink (the applier's element path, median of 9): ${median(netlinkTimes).toFixed(1)} ms (goal ≤ 20 ms)`);
  } finally {
    await run(['ip', 'netns', 'del', netns]);
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
