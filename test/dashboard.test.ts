// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';
import { rng } from '../src/synthetic/random.js';
import { startDashboard, type DashboardFixture } from './helpers/dashboard.js';

const c = syntheticCluster(4, 5, 2);
const pod = (ns: string, wl: string) => c.pods.find((p) => p.namespace === ns && p.name === `${wl}-0`)!;
let dash: DashboardFixture;

before(async () => {
  dash = await startDashboard({ flushMs: 100 });
});

after(() => dash?.close());

test('dashboard: map shows groups and edges; a DROPPED flow appears red; clicking an edge lists its flows', async () => {
  // Background traffic: each workload talks to the next ones; an audit edge; an external edge.
  const rand = rng(7);
  const now = Date.now();
  const recs = [];
  for (let i = 0; i < 400; i++) {
    const s = c.pods[Math.floor(rand() * c.pods.length)]!;
    const d = c.pods[(c.pods.indexOf(s) + 2 + Math.floor(rand() * 3)) % c.pods.length]!;
    recs.push(podRecord(s, d, { time: now - Math.floor(rand() * 60_000), bytes: 200 + Math.floor(rand() * 20_000) }));
  }
  recs.push(podRecord(pod('ns1', 'w1'), pod('ns2', 'w3'), { verdict: 'AUDIT', policy: 'NetworkPolicy ns2/audit-lockdown', rule: 'default-deny' }));
  recs.push({ ...podRecord(pod('ns3', 'w0'), pod('ns0', 'w0')), dst: { ip: '93.184.216.34', external: true, cidr: '0.0.0.0/0' } });
  dash.pipeline.ingest(recs);
  dash.pipeline.flush();

  const page = await dash.browser.newPage({ viewport: { width: 1500, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(dash.url, { waitUntil: 'domcontentloaded', timeout: 15_000 });
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=group-node]').length >= 20, undefined, { timeout: 10_000 });
  const groups = await page.locator('[data-testid=group-node]').count();
  assert.equal(groups, 21, '20 workloads + the external world');
  assert.ok((await page.locator('[data-testid=edge]').count()) > 20);
  assert.equal(await page.locator('[data-testid=edge][data-verdict=audit]').count(), 1);
  await page.waitForFunction(() => document.querySelector('[data-testid=status]')?.textContent?.includes('flows/s'), undefined, { timeout: 5000 });

  // A denied flow between two groups that never talked: the edge arrives over SSE, in red.
  const src = pod('ns0', 'w4');
  const dst = pod('ns3', 'w2');
  assert.equal(await page.locator(`[data-testid=edge][data-src="${src.workload}"][data-dst="${dst.workload}"]`).count(), 0);
  dash.pipeline.ingest(podRecord(src, dst, { verdict: 'DROPPED', dstPort: 81, policy: 'NetworkPolicy ns3/default-deny', rule: 'default-deny' }));
  const sel = `[data-testid=edge][data-src="${src.workload}"][data-dst="${dst.workload}"][data-verdict=dropped]`;
  await page.waitForSelector(sel, { timeout: 5000 });
  const stroke = await page.locator(`${sel} .edge-line`).evaluate((el) => getComputedStyle(el).stroke);
  assert.equal(stroke, 'rgb(239, 68, 68)');

  await page.locator(`${sel} [data-testid=edge-handle]`).click();
  await page.waitForSelector('[data-testid=edge-panel] [data-testid=edge-flow]', { timeout: 5000 });
  const rows = await page.locator('[data-testid=edge-flow]').allTextContents();
  assert.equal(rows.length, 1);
  assert.match(rows[0] ?? '', /DROPPED/);
  assert.match(rows[0] ?? '', /:81\/TCP/);
  assert.match(await page.locator('[data-testid=edge-policies]').innerText(), /NetworkPolicy ns3\/default-deny/);

  mkdirSync('artifacts', { recursive: true });
  await page.screenshot({ path: 'artifacts/dashboard.png' });
  assert.ok(statSync('artifacts/dashboard.png').size > 10_000);

  // Flow table with filters: a bad filter names the field.
  await page.locator('[data-testid=tab-flows]').click();
  await page.fill('input[name=port]', 'http');
  await page.click('button[type=submit]');
  assert.match(await page.locator('[data-testid=filter-error]').innerText({ timeout: 5000 }), /^port:/);
  await page.fill('input[name=port]', '81');
  await page.click('button[type=submit]');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=flow-table] tbody tr').length === 1, undefined, { timeout: 5000 });

  await page.locator('[data-testid=tab-policies]').click();
  await page.waitForSelector('text=NetworkPolicy ns3/default-deny', { timeout: 5000 });
  assert.deepEqual(errors, []);
  await page.close();
});
