// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// The kernel enforces the engine's verdicts, proven with real packets (root only; skipped
// otherwise). One lab for the whole file — the upstream e2e model (x/y/z × a/b/c) on two
// nodes, pods alternating between them — with the in-process nft agents enforcing. Every
// step of every shared conformance case (helpers/scenarios.ts: the same definitions the
// engine-level conformance tests run) is applied live, the agents' sync confirmed from their
// status, all 9×9 pairs probed on 80/TCP, 81/TCP, 80/UDP and 81/UDP, and every cell compared
// with the upstream truth table of the step and with the engine's verdict. Steps that change
// pod or namespace labels also measure how soon the kernel follows (≤ 1 s).
//
// Cleanup: a prefix and directory of its own; `after` takes the lab down by prefix (force),
// whatever failed.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readState } from '../src/lab/index.js';
import { stopAgents } from '../src/lab/supervisor.js';
import { ConformanceLab, formatReport, LABEL_FOLLOW_LIMIT_MS, type CaseReport } from './helpers/lab-scenarios.js';
import { cleanupPrefix, netnsSkipReason, netnsWithPrefix, removeDir, rootLinks, tempLabDir, testPrefix } from './helpers/netns.js';
import { ADMIN_CASES, UPSTREAM_CASES, type ConformanceCase } from './helpers/scenarios.js';

const prefix = testPrefix();
let dir: string | undefined;
let skip: string | undefined;
let lab: ConformanceLab | undefined;
let linksBefore: string[] = [];
const reports: { tier: 'NetworkPolicy' | 'AdminNetworkPolicy'; report: CaseReport }[] = [];

async function cleanup(): Promise<void> {
  if (!dir) return;
  const state = await readState(dir).catch(() => undefined);
  const pids = state ? [...state.pods.map((p) => p.serverPid), state.external.serverPid].filter((p): p is number => p !== undefined) : [];
  await lab?.down().catch(() => undefined);
  await stopAgents(dir).catch(() => undefined);
  await cleanupPrefix(prefix, pids);
}

describe('lab conformance: real packets through real nftables agree with the upstream tables and the engine (root)', () => {
  before(async () => {
    skip = await netnsSkipReason();
    if (skip) return;
    linksBefore = await rootLinks();
    dir = await tempLabDir();
    const started = Date.now();
    lab = await ConformanceLab.up({ dir, prefix });
    const nodes = new Set(lab.state.pods.map((p) => p.node));
    assert.equal(nodes.size, 2, 'pods on both nodes');
    console.log(`# lab up: 2 nodes, ${lab.state.pods.length} pods (${[...nodes].map((n) => `${n}: ${lab?.state.pods.filter((p) => p.node === n).map((p) => p.key).join(' ')}`).join('; ')}), agents enforcing, ${Date.now() - started} ms`);
  });

  after(async () => {
    await cleanup();
    if (dir) await removeDir(dir);
  });

  const run = (tier: 'NetworkPolicy' | 'AdminNetworkPolicy', c: ConformanceCase): void => {
    it(`${tier}: ${c.name}`, async (t) => {
      if (skip) return t.skip(skip);
      assert.ok(lab, 'the lab is up');
      const report = await lab.runCase(c);
      reports.push({ tier, report });
      t.diagnostic(formatReport(report));
    });
  };
  for (const c of Object.values(UPSTREAM_CASES)) run('NetworkPolicy', c);
  for (const c of Object.values(ADMIN_CASES)) run('AdminNetworkPolicy', c);

  it('covers at least 15 upstream NetworkPolicy and 5 AdminNetworkPolicy cases, and live label changes were enforced within 1 s', (t) => {
    if (skip) return t.skip(skip);
    const np = reports.filter((r) => r.tier === 'NetworkPolicy').length;
    const anp = reports.filter((r) => r.tier === 'AdminNetworkPolicy').length;
    assert.ok(np >= 15, `${np} NetworkPolicy cases passed`);
    assert.ok(anp >= 5, `${anp} AdminNetworkPolicy cases passed`);
    const follows = reports.flatMap((r) => r.report.steps.filter((s) => s.followMs !== undefined).map((s) => ({ name: `${r.report.name} / ${s.label}`, ms: s.followMs ?? 0 })));
    assert.ok(follows.length >= 3, `label changes measured: ${follows.length}`);
    for (const f of follows) assert.ok(f.ms <= LABEL_FOLLOW_LIMIT_MS, `${f.name}: ${Math.round(f.ms)} ms`);
    const steps = reports.flatMap((r) => r.report.steps);
    const cells = steps.reduce((n, s) => n + s.cells, 0);
    const total = reports.reduce((n, r) => n + r.report.ms, 0);
    t.diagnostic(
      `${np} NetworkPolicy + ${anp} AdminNetworkPolicy cases, ${steps.length} steps, ${cells} probed cells, ${Math.round(total / 1000)} s; ` +
        `label changes enforced after ${follows.map((f) => `${Math.round(f.ms)} ms`).join(', ')}`,
    );
  });

  it('takes the lab down without leaving a namespace or a root link behind', async (t) => {
    if (skip) return t.skip(skip);
    await cleanup();
    lab = undefined;
    assert.deepEqual(await netnsWithPrefix(prefix), []);
    assert.deepEqual(await rootLinks(), linksBefore);
  });
});
