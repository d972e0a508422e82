// suite: integration (no root; a real server and Debian's Chromium: `npm run test:integration`)
// Services in the dashboard: the agents' status files (written with the agents' own writer)
// behind `/api/services`; chips on the map with each Service's weight split and health, a
// Service panel with its endpoints and the weights over time, a Services tab; weights that
// move in the files move on the page.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readLbStatuses, writeLbStatus } from '../src/agent/lb-files.js';
import { serviceViews, type LbNodeStatus } from '../src/agent/lb-status.js';
import { podRecord } from '../src/flows/synthetic.js';
import { startDashboard, type DashboardFixture } from './helpers/dashboard.js';
import { clusterPort, lbNodeStatus } from './helpers/lb-status.js';

let dash: DashboardFixture;
let dir: string;

const EPS = [
  { key: '10.244.0.3:8080', pod: 'shop/web-0', node: 'node-0', location: 'eu' },
  { key: '10.244.0.4:8080', pod: 'shop/web-1', node: 'node-0', location: 'eu' },
  { key: '10.244.1.3:8080', pod: 'shop/web-2', node: 'node-1', location: 'us' },
];

/** A node's status whose adaptive Service moved weight off web-2 over 60 points. */
function status(node: string, last: [number, number, number], failing = false): LbNodeStatus {
  const t0 = Date.now() - 30_000;
  const history = Array.from({ length: 60 }, (_, i) => {
    const f = i / 59;
    const w = [333 + f * (last[0] - 333), 333 + f * (last[1] - 333), 334 + f * (last[2] - 334)].map(Math.round);
    return { t: t0 + i * 500, weights: Object.fromEntries(EPS.map((e, k) => [e.key, w[k]])) };
  });
  return lbNodeStatus(node, [
    clusterPort(
      'shop/web',
      { clusterIP: '10.96.0.80', port: 80, mode: 'adaptive' },
      EPS.map((e, k) => ({ ...e, weight: last[k], healthy: !(failing && k === 2), drained: false, latencyMs: [11, 12, 240][k], errorRate: [0, 0.01, 0.3][k], inFlight: [2, 3, 9][k], connections: [40, 41, 12][k], recentShare: [0.45, 0.45, 0.1][k] })),
      history,
    ),
    clusterPort(
      'shop/db',
      { clusterIP: '10.96.0.90', port: 5432, mode: 'equal' },
      [{ key: '10.244.1.9:5432', pod: 'shop/db-0', node: 'node-1', location: 'us', weight: 1000, healthy: true, drained: false, latencyMs: 2, errorRate: 0, inFlight: 1, connections: 1 }],
      history.map((h) => ({ t: h.t, weights: { '10.244.1.9:5432': 1000 } })),
    ),
  ]);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weir-dash-svc-'));
  await writeLbStatus(dir, status('node-0', [450, 450, 100]));
  await writeLbStatus(dir, status('node-1', [400, 400, 200]));
  dash = await startDashboard({ services: { views: async () => readLbStatuses(dir).then(({ statuses, errors }) => ({ services: serviceViews(statuses), errors })) } });
});

after(async () => {
  await dash?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('dashboard: Services on the map, a Service panel with weights over time, the Services tab, live updates', async () => {
  const page = await dash.browser.newPage({ viewport: { width: 1500, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(dash.url, { waitUntil: 'domcontentloaded', timeout: 15_000 });

  // Chips over the map.
  await page.waitForSelector('[data-testid=service-chips] [data-testid="chip-shop/web"]', { timeout: 10_000 });
  assert.equal(await page.locator('[data-testid=service-chips] button').count(), 2);
  assert.match(await page.locator('[data-testid="chip-shop/web"]').innerText(), /web:80\s+adaptive/);

  // The panel: endpoints of node-0 and one line per endpoint over time.
  await page.locator('[data-testid="chip-shop/web"]').click();
  await page.waitForSelector('[data-testid=service-panel] [data-testid=weight-chart] polyline', { timeout: 5000 });
  assert.equal(await page.locator('[data-testid=weight-chart] polyline').count(), 3);
  const rows = await page.locator('[data-testid=endpoint-table] tbody tr').allInnerTexts();
  assert.equal(rows.length, 3);
  assert.match(rows[2] ?? '', /shop\/web-2\s+us\s+100\s+ok\s+240\.0 ms\s+30\.0%\s+9\s+10\.0%/);
  // The last point of web-2's line sits low (weight 100 of 1000), its first at a third.
  const points = (await page.locator('[data-testid=weight-chart] polyline').nth(2).getAttribute('points'))?.split(' ') ?? [];
  assert.equal(points.length, 60);
  const yOf = (p: string | undefined): number => Number(p?.split(',')[1]);
  assert.ok(yOf(points[59]) > yOf(points[0]), 'the weight went down over time');

  // Another node's view of the same Service.
  await page.locator('[data-testid=service-node]').selectOption('node-1');
  await page.waitForFunction(() => document.querySelector('[data-testid=endpoint-table] tbody tr:nth-child(3)')?.textContent?.includes('200'), undefined, { timeout: 5000 });

  mkdirSync('artifacts', { recursive: true });
  await page.screenshot({ path: 'artifacts/dashboard-services.png' });
  assert.ok(statSync('artifacts/dashboard-services.png').size > 10_000);

  // The Services tab, and a change in the agents' files showing within the poll interval.
  await page.locator('[data-testid=tab-services]').click();
  await page.waitForSelector('[data-testid="service-shop/db"]', { timeout: 5000 });
  await writeLbStatus(dir, status('node-0', [500, 500, 0], true));
  await page.locator('[data-testid="service-shop/web"]').click();
  await page.waitForFunction(() => /failing/.test(document.querySelector('[data-testid=endpoint-table] tbody tr:nth-child(3)')?.textContent ?? ''), undefined, { timeout: 5000 });
  assert.match(await page.locator('[data-testid="service-shop/web"]').innerText(), /shop\/web\s+10\.96\.0\.80:80\/TCP\s+adaptive\s+3\s+2/);
  await page.screenshot({ path: 'artifacts/dashboard-services-tab.png' });

  // A flow through the Service names the endpoint and the Service in the flow table.
  const client = { ip: '10.244.0.9', namespace: 'shop', name: 'client', workload: 'shop/client[Pod]', labels: { pod: 'client' } };
  const web2 = { ip: '10.244.1.3', namespace: 'shop', name: 'web-2', workload: 'shop/web-2[Pod]', labels: { pod: 'web-2' } };
  dash.pipeline.ingest({ ...podRecord(client, web2, { dstPort: 8080 }), service: { ip: '10.96.0.80', port: 80, name: 'shop/web' } });
  dash.pipeline.flush();
  await page.locator('[data-testid=tab-flows]').click();
  await page.waitForFunction(() => /shop\/web-2:8080 via svc shop\/web/.test(document.querySelector('[data-testid=flow-table] tbody')?.textContent ?? ''), undefined, { timeout: 5000 });
  assert.deepEqual(errors, []);
  await page.close();
});
