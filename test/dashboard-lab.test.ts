// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// The dashboard of a real lab (root only; skipped otherwise): `weir lab up` (the demo) with
// agents and `weir serve`, real probes through the kernel, and Debian's Chromium driven by
// playwright-core against the server `lab up` started; a probe through a Service shows the
// Service as a node of the map. Everything created here is removed in
// t.after, also on failure. The screenshot goes to artifacts/dashboard-lab.png.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { labCluster } from '../src/lab/compare.js';
import { probe, readState, type LabState } from '../src/lab/index.js';
import { desiredDir } from '../src/lab/supervisor.js';
import { loadManifests } from '../src/load/index.js';
import { allows, evaluatePair, podEndpoint, PolicyEngine } from '../src/policy/index.js';
import { ensureUiBuilt } from '../src/ui/build.js';
import { launchChromium } from './helpers/browser.js';
import { scratchLab } from './helpers/lab.js';
import { netnsSkipReason } from './helpers/netns.js';

const WEIR = fileURLToPath(new URL('../bin/weir.js', import.meta.url));
const DEMO = fileURLToPath(new URL('../examples/demo/', import.meta.url));
/** The demo pod whose traffic is held back until the page is open, and a target its egress policy denies. */
const LATE_SOURCE = 'shop/nightly-report-0';
const DENIED_TARGET = 'data/postgres-0';

function weir(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEIR, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, WEIR_DEBUG: '' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

interface Cell {
  readonly from: string;
  readonly to: string;
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP';
}

/**
 * The demo's allowed connections, as the engine the agents enforce computes them (served
 * ports only): traffic that looks like the shop at work, rather than a probe of every pair.
 */
async function allowedCells(dir: string, state: LabState, skip: string): Promise<Cell[]> {
  const engine = new PolicyEngine(labCluster((await loadManifests([desiredDir(dir)])).cluster, state));
  const cells: Cell[] = [];
  for (const s of state.pods) {
    if (s.key === skip) continue;
    const src = engine.pods.get(s.key);
    for (const d of state.pods) {
      const dst = engine.pods.get(d.key);
      if (!src || !dst || s.key === d.key) continue;
      const allowed = evaluatePair(engine, podEndpoint(engine, src), podEndpoint(engine, dst)).allowed;
      for (const p of d.served) if (p.protocol !== 'SCTP' && allows(allowed, p.protocol, p.port)) cells.push({ from: s.key, to: d.key, port: p.port, protocol: p.protocol });
    }
  }
  return cells;
}

async function probeCells(state: LabState, cells: readonly Cell[]): Promise<void> {
  for (let i = 0; i < cells.length; i += 8) {
    await Promise.all(
      cells.slice(i, i + 8).map((c) => probe(state, { from: [c.from], to: [c.to], ports: [{ port: c.port, protocol: c.protocol }], timeoutMs: 500, udpAttempts: 1, external: false })),
    );
  }
}

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

describe('dashboard of a lab (root, chromium)', () => {
  it('shows the demo groups and edges, a denied probe in red, and an edge click lists its flows', async (t) => {
    if (skip) return t.skip(skip);
    ensureUiBuilt();
    const { prefix, dir } = await scratchLab(t);
    const up = await weir(['lab', 'up', DEMO, '--dir', dir, '--prefix', prefix, '--serve-port', '0']);
    assert.equal(up.code, 0, `lab up:\n${up.stdout}\n${up.stderr}`);
    const url = /dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(up.stdout)?.[1];
    assert.ok(url, `lab up prints the dashboard URL:\n${up.stdout}`);
    const state = await readState(dir);
    assert.ok(state, 'lab state');
    const workloadOf = (key: string): string => state.pods.find((p) => p.key === key)?.workload ?? key;

    // The demo at work (every allowed path, from every pod but one), the external host calling
    // the gateway, and two denials.
    const cells = await allowedCells(dir, state, LATE_SOURCE);
    await probeCells(state, [...cells, { from: 'shop/frontend-0', to: 'data/postgres-0', port: 5432, protocol: 'TCP' }, { from: 'ingress/gateway-0', to: 'shop/cart-0', port: 8080, protocol: 'TCP' }]);
    await probe(state, { from: ['external'], to: ['ingress/gateway-0'], timeoutMs: 500, external: true });
    const sources = [...new Set(cells.map((c) => c.from))];

    const browser = await launchChromium();
    t.after(() => browser.close());
    const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 15_000 });
    const expected = [...new Set(sources.map(workloadOf))];
    await page.waitForFunction((n) => document.querySelectorAll('[data-testid=group-node]').length >= n, expected.length, { timeout: 15_000 });
    const groups = await page.locator('[data-testid=group-node]').evaluateAll((els) => els.map((e) => e.getAttribute('data-group') ?? ''));
    for (const w of expected) assert.ok(groups.includes(w), `group ${w} on the map (have ${groups.join(', ')})`);
    assert.ok((await page.locator('[data-testid=edge][data-verdict=forwarded]').count()) > 5, 'allowed edges');
    assert.equal(await page.locator('[data-testid=edge][data-verdict=dropped]').count(), 2, 'the two denied edges');

    // A denied probe between two groups that never talked arrives live, in red.
    const src = workloadOf(LATE_SOURCE);
    const dst = workloadOf(DENIED_TARGET);
    const sel = `[data-testid=edge][data-src="${src}"][data-dst="${dst}"]`;
    assert.equal(await page.locator(sel).count(), 0, 'no edge before the probe');
    const denied = await probe(state, { from: [LATE_SOURCE], to: [DENIED_TARGET], ports: [{ port: 8080, protocol: 'TCP' }], timeoutMs: 500 });
    assert.equal(denied.cells[0]?.ok, false, 'the probe is denied');
    await page.waitForSelector(`${sel}[data-verdict=dropped]`, { timeout: 10_000 });
    const stroke = await page.locator(`${sel} .edge-line`).evaluate((el) => getComputedStyle(el).stroke);
    assert.equal(stroke, 'rgb(239, 68, 68)', 'denied colour');

    await page.locator(`${sel} [data-testid=edge-handle]`).click();
    await page.waitForSelector('[data-testid=edge-panel] [data-testid=edge-flow]', { timeout: 5000 });
    const rows = await page.locator('[data-testid=edge-flow]').allTextContents();
    assert.equal(rows.length, 1, `one flow on the edge: ${rows.join(' | ')}`);
    assert.match(rows[0] ?? '', /DROPPED/, 'the row says DROPPED');
    assert.match(rows[0] ?? '', /:8080\/TCP/, 'the row names the port');
    assert.match(await page.locator('[data-testid=edge-policies]').innerText(), /NetworkPolicy shop\/batch-egress/, 'the deciding policy is listed');

    // Through a Service, with the kernel's DNAT: frontend → svc/shop/cart. The Service is a node
    // of the map, the client's flows go into it, and it is wired to the cart's group with the
    // share the agents report.
    await page.locator('[data-testid=edge-panel] .close').click();
    const frontend = workloadOf('shop/frontend-0');
    const cart = workloadOf('shop/cart-0');
    const through = await weir(['lab', 'probe', '--dir', dir, '--prefix', prefix, '--from', 'shop/frontend-0', '--to', 'svc/shop/cart', '--port', '80/TCP', '-o', 'json']);
    assert.equal(through.code, 0, `probe through the Service:\n${through.stdout}\n${through.stderr}`);
    await page.waitForSelector(`[data-testid=edge][data-src="${frontend}"][data-dst="svc:shop/cart"]`, { timeout: 10_000 });
    const link = page.locator(`[data-testid=service-link][data-svc="svc:shop/cart"][data-group="${cart}"]`);
    await link.waitFor({ timeout: 10_000 });
    assert.equal(await link.getAttribute('data-share'), '1.0000', 'all of the cart Service goes to the cart group');
    assert.match(await page.locator('[data-testid=service-node][data-service="shop/cart"]').textContent() ?? '', /shop\/cart\s*10\.\d+\.\d+\.\d+:80/);
    await page.locator('[data-testid=service-node][data-service="shop/cart"]').click();
    await page.waitForSelector('[data-testid=service-panel] [data-testid=weight-series]', { timeout: 5000 });

    mkdirSync('artifacts', { recursive: true });
    await page.screenshot({ path: 'artifacts/dashboard-lab.png' });
    assert.ok(statSync('artifacts/dashboard-lab.png').size > 10_000, 'screenshot written');
    assert.deepEqual(errors, [], 'no page errors');
    await page.close();
  });
});
