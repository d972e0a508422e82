// suite: integration (no root; a real server and Debian's Chromium: `npm run test:integration`)
// Services in the dashboard: the agents' status files (written with the agents' own writer)
// behind `/api/services`, and flows through the Services in the real pipeline. On the map each
// Service port is a node wired to the groups of its endpoints (edge = weight share, colour =
// health) with the clients' flows drawn into it; a toggle draws them direct again; a filter and
// a cap keep hundreds of Services readable. A click opens the Service panel, whose chart shows
// one band per endpoint even when weights are equal; the Services tab; weights that move in
// the files move on the page.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import { readLbStatuses, writeLbStatus } from '../src/agent/lb-files.js';
import { serviceViews, type EndpointStatus, type LbNodeStatus, type ServicePortStatus } from '../src/agent/lb-status.js';
import type { ServiceApiView } from '../src/api/services-schema.js';
import type { PodInfo } from '../src/flows/enrich.js';
import type { FlowRecord } from '../src/flows/record.js';
import { podRecord } from '../src/flows/synthetic.js';
import { startDashboard, type DashboardFixture } from './helpers/dashboard.js';
import { clusterPort, lbNodeStatus } from './helpers/lb-status.js';

let dash: DashboardFixture;
let dir: string;
/** Where the server's Service source reads the agents' files (switched by the scale test). */
let statusDir: string;

const pod = (ns: string, name: string, workload: string, ip: string): PodInfo => ({ ip, namespace: ns, name, workload: `${ns}/${workload}[Deployment]`, labels: { pod: workload } });
const PODS = {
  webEu0: pod('shop', 'web-eu-0', 'web-eu', '10.244.0.3'),
  webEu1: pod('shop', 'web-eu-1', 'web-eu', '10.244.0.4'),
  webUs0: pod('shop', 'web-us-0', 'web-us', '10.244.1.3'),
  db0: pod('shop', 'postgres-0', 'postgres', '10.244.1.9'),
  api0: pod('pay', 'api-0', 'api', '10.244.2.3'),
  api1: pod('pay', 'api-1', 'api', '10.244.2.4'),
  frontend: pod('front', 'frontend-7d9f', 'frontend', '10.244.3.5'),
  checkout: pod('shop', 'checkout-0', 'checkout', '10.244.0.7'),
  fraud: pod('pay', 'fraud-check-0', 'fraud-check', '10.244.2.8'),
};
const byIp = new Map(Object.values(PODS).map((p) => [p.ip, p]));

const WEB = [PODS.webEu0, PODS.webEu1, PODS.webUs0];
const ep = (p: PodInfo, port: number, o: Partial<EndpointStatus>): EndpointStatus => ({ key: `${p.ip}:${port}`, pod: `${p.namespace}/${p.name}`, weight: 0, healthy: true, drained: false, errorRate: 0, inFlight: 0, connections: 0, ...o });

/** A node's status: shop/web (adaptive, moved weight off web-us over 60 points), shop/db, pay/api with a drained endpoint. */
function status(node: string, last: [number, number, number], failing = false): LbNodeStatus {
  const t0 = Date.now() - 30_000;
  const history = Array.from({ length: 60 }, (_, i) => {
    const f = i / 59;
    const w = [333 + f * (last[0] - 333), 333 + f * (last[1] - 333), 334 + f * (last[2] - 334)].map(Math.round);
    return { t: t0 + i * 500, weights: Object.fromEntries(WEB.map((p, k) => [`${p.ip}:8080`, w[k]])) };
  });
  return lbNodeStatus(node, [
    clusterPort(
      'shop/web',
      { clusterIP: '10.96.0.80', port: 80, mode: 'adaptive' },
      WEB.map((p, k) => ep(p, 8080, { location: k < 2 ? 'eu' : 'us', weight: last[k], healthy: !(failing && k === 2), latencyMs: [11, 12, 240][k], errorRate: [0, 0.01, 0.3][k], inFlight: [2, 3, 9][k], connections: [40, 41, 12][k], recentShare: [0.45, 0.45, 0.1][k] })),
      history,
    ),
    clusterPort('shop/db', { clusterIP: '10.96.0.90', port: 5432, mode: 'equal' }, [ep(PODS.db0, 5432, { weight: 1000, latencyMs: 2, inFlight: 1, connections: 1 })], history.map((h) => ({ t: h.t, weights: { [`${PODS.db0.ip}:5432`]: 1000 } }))),
    clusterPort(
      'pay/api',
      { clusterIP: '10.96.1.20', port: 443, mode: 'equal' },
      [ep(PODS.api0, 8443, { weight: 0, drained: true, location: 'eu' }), ep(PODS.api1, 8443, { weight: 1000, location: 'us' })],
      history.map((h) => ({ t: h.t, weights: { [`${PODS.api0.ip}:8443`]: 0, [`${PODS.api1.ip}:8443`]: 1000 } })),
    ),
  ]);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weir-dash-svc-'));
  statusDir = dir;
  await writeLbStatus(dir, status('node-0', [450, 450, 100]));
  await writeLbStatus(dir, status('node-1', [400, 400, 200]));
  dash = await startDashboard({
    services: {
      views: async () => readLbStatuses(statusDir).then(({ statuses, errors }) => ({ services: serviceViews(statuses), errors })),
      endpointGroups: (ip) => {
        const p = byIp.get(ip);
        return p ? { workload: p.workload ?? '', identity: `${p.namespace}:pod=${p.labels?.pod ?? ''}` } : undefined;
      },
    },
  });
});

after(async () => {
  await dash?.close();
  rmSync(dir, { recursive: true, force: true });
});

const via = (r: FlowRecord, ip: string, port: number, name: string): FlowRecord => ({ ...r, service: { ip, port, name } });

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
  name: string;
}

function overlapping(boxes: readonly Box[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i] as Box;
      const b = boxes[j] as Box;
      if (a.x + a.w - 1 > b.x && b.x + b.w - 1 > a.x && a.y + a.h - 1 > b.y && b.y + b.h - 1 > a.y) out.push([a.name, b.name]);
    }
  }
  return out;
}

/** Every label on the map (groups, Services, namespaces, the shares on Service edges), as screen boxes. */
async function labelBoxes(page: Page): Promise<Box[]> {
  return page.evaluate(() => {
    const rect = (el: Element, name: string) => {
      const r = el.getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, h: r.height, name };
    };
    return [
      ...[...document.querySelectorAll('[data-testid=group-node] text')].map((t) => rect(t, `group ${t.textContent ?? ''}`)),
      ...[...document.querySelectorAll('[data-testid=service-node] text:not(.glyph)')].map((t) => rect(t, `service ${t.textContent ?? ''}`)),
      ...[...document.querySelectorAll('.cluster text')].map((t) => rect(t, `cluster ${t.textContent ?? ''}`)),
      ...[...document.querySelectorAll('[data-testid=service-link] .share rect')].map((t) => rect(t, `share ${t.closest('[data-testid=service-link]')?.getAttribute('data-group') ?? ''}`)),
    ];
  });
}

test('dashboard: Services are nodes of the map wired to their endpoint groups, clients flow into them, a click opens the panel', { timeout: 60_000 }, async () => {
  // Traffic: the frontend reaches shop/web through its ClusterIP (and once straight to a pod
  // address), checkout reaches the database through its Service, fraud-check is denied behind
  // shop/web (policy after DNAT).
  const recs: FlowRecord[] = [];
  for (let i = 0; i < 20; i++) recs.push(via(podRecord(PODS.frontend, WEB[i % 3] as PodInfo, { dstPort: 8080 }), '10.96.0.80', 80, 'shop/web'));
  recs.push(podRecord(PODS.frontend, PODS.webEu0, { dstPort: 8080 }));
  for (let i = 0; i < 6; i++) recs.push(via(podRecord(PODS.checkout, PODS.db0, { dstPort: 5432 }), '10.96.0.90', 5432, 'shop/db'));
  for (let i = 0; i < 3; i++) recs.push(via(podRecord(PODS.fraud, PODS.webEu1, { dstPort: 8080, verdict: 'DROPPED' }), '10.96.0.80', 80, 'shop/web'));
  for (let i = 0; i < 4; i++) recs.push(via(podRecord(PODS.frontend, PODS.api1, { dstPort: 8443 }), '10.96.1.20', 443, 'pay/api'));
  dash.pipeline.ingest(recs);
  dash.pipeline.flush();

  const page = await dash.browser.newPage({ viewport: { width: 1500, height: 900 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.addInitScript({ content: 'globalThis.__name = (f) => f;' });
  await page.goto(dash.url, { waitUntil: 'domcontentloaded', timeout: 15_000 });

  // One node per Service port, a distinct shape, labelled ns/name and ClusterIP:port.
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=service-node]').length === 3, undefined, { timeout: 10_000 });
  const web = page.locator('[data-testid=service-node][data-service="shop/web"]');
  assert.equal(await web.locator('polygon').count(), 1, 'a Service is a hexagon, not a group circle');
  assert.match(await web.textContent() ?? '', /shop\/web\s*10\.96\.0\.80:80/);
  assert.equal(await page.locator('[data-testid=service-node][data-service="pay/api"]').getAttribute('data-state'), 'degraded', 'a drained endpoint marks its Service');

  // Edges to the endpoint groups, with the weight share the API reports (mean over the nodes).
  const api = (await (await fetch(`${dash.url}/api/services`)).json()) as { services: ServiceApiView[] };
  const webView = api.services.find((v) => v.service === 'shop/web') as ServiceApiView;
  assert.equal(webView.nodes[0]?.endpoints[0]?.workload, 'shop/web-eu[Deployment]', 'the API places each endpoint in its pod group');
  const expected = new Map<string, number>();
  for (const n of webView.nodes) {
    const total = n.endpoints.reduce((s, e) => s + e.weight, 0);
    for (const e of n.endpoints) expected.set(e.workload ?? '', (expected.get(e.workload ?? '') ?? 0) + e.weight / total / webView.nodes.length);
  }
  assert.deepEqual([...expected.keys()].sort(), ['shop/web-eu[Deployment]', 'shop/web-us[Deployment]']);
  const links = await page.locator('[data-testid=service-link][data-svc="svc:shop/web"]').evaluateAll((els) =>
    els.map((e) => ({ group: e.getAttribute('data-group'), share: Number(e.getAttribute('data-share')), state: e.getAttribute('data-state'), label: e.querySelector('[data-testid=service-link-share]')?.textContent, dots: e.querySelectorAll('circle.ep').length })),
  );
  assert.equal(links.length, 2, 'one edge per endpoint group');
  for (const l of links) {
    const want = expected.get(l.group ?? '') ?? NaN;
    assert.ok(Math.abs(l.share - want) < 1e-3, `${l.group}: share ${l.share} = ${want} from /api/services`);
    assert.equal(l.label, `${Math.round(want * 100)}%`);
    assert.equal(l.state, 'ok');
  }
  assert.equal(links.find((l) => l.group === 'shop/web-eu[Deployment]')?.dots, 2, 'one dot per endpoint');
  const apiLinks = await page.locator('[data-testid=service-link][data-svc="svc:pay/api"]').evaluateAll((els) => els.map((e) => [e.getAttribute('data-state'), e.querySelector('circle.ep.drained') !== null]));
  assert.deepEqual(apiLinks, [['degraded', true]], 'the drained endpoint is drawn as drained');

  // Client flows drawn into the Service, not straight to its endpoints; the pod-address flow stays direct.
  const edge = (src: string, dst: string) => page.locator(`[data-testid=edge][data-src="${src}"][data-dst="${dst}"]`);
  await page.waitForFunction(() => document.querySelector('[data-testid=edge][data-dst="svc:shop/web"]') !== null, undefined, { timeout: 5000 });
  assert.equal(await edge('front/frontend[Deployment]', 'svc:shop/web').count(), 1);
  assert.equal(await edge('shop/checkout[Deployment]', 'svc:shop/db').count(), 1);
  assert.equal(await edge('pay/fraud-check[Deployment]', 'svc:shop/web').getAttribute('data-verdict'), 'dropped', 'denied behind the Service: a red edge into it');
  assert.equal(await edge('front/frontend[Deployment]', 'shop/web-us[Deployment]').count(), 0, 'all its flows went through the Service');
  assert.equal(await edge('front/frontend[Deployment]', 'shop/web-eu[Deployment]').count(), 1, 'the flow to a pod address stays direct');
  assert.equal(await edge('shop/checkout[Deployment]', 'shop/postgres[Deployment]').count(), 0);

  mkdirSync('artifacts', { recursive: true });
  await page.screenshot({ path: 'artifacts/dashboard-services-map.png' });
  const overlaps = overlapping(await labelBoxes(page));
  assert.deepEqual(overlaps, [], 'no label on the map overlaps another');

  // Grouped by namespace: the Service is wired to its namespace, clients' namespaces flow into it.
  await page.locator('[data-testid=group-by]').selectOption('namespace');
  await page.waitForFunction(() => document.querySelector('[data-testid=service-link][data-svc="svc:shop/web"]')?.getAttribute('data-group') === 'shop' && document.querySelector('[data-testid=edge][data-src=front][data-dst="svc:shop/web"]') !== null, undefined, { timeout: 5000 });
  assert.equal(await page.locator('[data-testid=service-link][data-svc="svc:shop/web"]').getAttribute('data-share'), '1.0000');
  assert.equal(await edge('front', 'shop').count(), 1, 'the flow to a pod address stays direct');
  assert.deepEqual(overlapping(await labelBoxes(page)), [], 'no label overlaps another (by namespace)');
  await page.screenshot({ path: 'artifacts/dashboard-services-namespace.png' });
  await page.locator('[data-testid=group-by]').selectOption('workload');
  await page.waitForFunction(() => document.querySelector('[data-testid=edge][data-dst="svc:shop/web"]') !== null, undefined, { timeout: 5000 });

  // A click on the edge into a Service opens the Service's panel.
  await edge('shop/checkout[Deployment]', 'svc:shop/db').locator('[data-testid=edge-handle]').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=service-panel] h2')?.textContent === 'shop/db', undefined, { timeout: 5000 });

  // A click on the Service node opens its panel: one band per endpoint, web-eu-0 and web-eu-1
  // (equal weights) side by side, each its own visible band.
  await web.click();
  await page.waitForSelector('[data-testid=service-panel] [data-testid=weight-chart] [data-testid=weight-series]', { timeout: 5000 });
  assert.match(await page.locator('[data-testid=service-panel] h2').innerText(), /shop\/web/);
  assert.equal(await web.getAttribute('class'), 'svc-node ok active');
  const series = await page.locator('[data-testid=weight-series]').evaluateAll((els) =>
    els.map((e) => {
      const r = e.getBoundingClientRect();
      return { key: e.getAttribute('data-endpoint'), share: Number(e.getAttribute('data-share')), d: e.getAttribute('d'), h: r.height, y: r.y };
    }),
  );
  assert.deepEqual(series.map((s) => s.key), WEB.map((p) => `${p.ip}:8080`), 'one series per endpoint');
  const [a, b, c] = series;
  assert.ok(a && b && c);
  assert.ok(Math.abs(a.share - 0.45) < 1e-3 && Math.abs(b.share - 0.45) < 1e-3 && Math.abs(c.share - 0.1) < 1e-3, `shares now ${a.share}/${b.share}/${c.share}`);
  assert.notEqual(a.d, b.d, 'equal weights draw two different bands');
  assert.ok(a.h > 20 && b.h > 20, 'both equal-weight bands are visible');
  assert.ok(Math.abs(a.y - b.y) > 20, 'and they do not lie on top of each other');
  assert.deepEqual((await page.locator('[data-testid=weight-legend] li').allInnerTexts()).map((t) => t.trim()), ['shop/web-eu-0 45.0%', 'shop/web-eu-1 45.0%', 'shop/web-us-0 10.0%']);
  const rows = await page.locator('[data-testid=endpoint-table] tbody tr').allInnerTexts();
  assert.match(rows[2] ?? '', /shop\/web-us-0\s+us\s+100\s+ok\s+240\.0 ms\s+30\.0%\s+9\s+10\.0%/);
  await page.screenshot({ path: 'artifacts/dashboard-services.png' });
  assert.ok(statSync('artifacts/dashboard-services.png').size > 10_000);

  // Another node's view of the same Service.
  await page.locator('[data-testid=balanced-by]').selectOption('node-1');
  await page.waitForFunction(() => document.querySelector('[data-testid=endpoint-table] tbody tr:nth-child(3)')?.textContent?.includes('200'), undefined, { timeout: 5000 });

  // A failing endpoint turns its edge red within the poll interval.
  await writeLbStatus(dir, status('node-0', [500, 500, 0], true));
  await writeLbStatus(dir, status('node-1', [500, 500, 0], true));
  await page.waitForFunction(() => document.querySelector('[data-testid=service-link][data-group="shop/web-us[Deployment]"]')?.getAttribute('data-state') === 'down', undefined, { timeout: 6000 });
  assert.equal(await page.locator('[data-testid=service-link][data-group="shop/web-us[Deployment]"] [data-testid=service-link-share]').textContent(), '0%');
  assert.equal(await web.getAttribute('data-state'), 'degraded');

  // Direct: no Service nodes, flows straight to the endpoint groups (as after DNAT).
  await page.locator('[data-testid=service-mode-direct]').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=service-node]').length === 0, undefined, { timeout: 5000 });
  assert.equal(await edge('front/frontend[Deployment]', 'shop/web-us[Deployment]').count(), 1);
  assert.equal(await edge('shop/checkout[Deployment]', 'shop/postgres[Deployment]').count(), 1);
  await page.locator('[data-testid=service-mode-through]').click();
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=service-node]').length === 3, undefined, { timeout: 5000 });

  // The filter keeps the matching Services; the others' flows go back to direct edges.
  await page.locator('[data-testid=service-filter]').fill('10.96.0.9');
  await page.waitForFunction(() => document.querySelectorAll('[data-testid=service-node]').length === 1, undefined, { timeout: 5000 });
  assert.equal(await page.locator('[data-testid=service-node]').getAttribute('data-service'), 'shop/db');
  assert.equal(await edge('front/frontend[Deployment]', 'shop/web-us[Deployment]').count(), 1);
  assert.match(await page.locator('[data-testid=service-count]').innerText(), /^1 of 3/);
  await page.locator('[data-testid=service-filter]').fill('');

  // The Services tab.
  await page.locator('[data-testid=tab-services]').click();
  await page.waitForSelector('[data-testid="service-shop/db"]', { timeout: 5000 });
  await page.locator('[data-testid="service-shop/web"]').click();
  await page.waitForFunction(() => /failing/.test(document.querySelector('[data-testid=endpoint-table] tbody tr:nth-child(3)')?.textContent ?? ''), undefined, { timeout: 5000 });
  assert.match(await page.locator('[data-testid="service-shop/web"]').innerText(), /shop\/web\s+10\.96\.0\.80:80\/TCP\s+adaptive\s+3\s+2/);
  await page.screenshot({ path: 'artifacts/dashboard-services-tab.png' });

  // A flow through the Service names the endpoint and the Service in the flow table.
  await page.locator('[data-testid=tab-flows]').click();
  await page.waitForFunction(() => /shop\/web-us-0:8080 via svc shop\/web/.test(document.querySelector('[data-testid=flow-table] tbody')?.textContent ?? ''), undefined, { timeout: 5000 });
  assert.deepEqual(errors, []);
  await page.close();
});

test('dashboard with 300 Services: the map keeps the busiest and failing ones, the filter finds any, labels stay apart', { timeout: 60_000 }, async () => {
  const many = mkdtempSync(join(tmpdir(), 'weir-dash-svc-many-'));
  try {
    const now = Date.now();
    const ports: ServicePortStatus[] = [];
    const recs: FlowRecord[] = [];
    for (let i = 0; i < 300; i++) {
      const ns = `team-${String(i % 10).padStart(2, '0')}`;
      const name = `svc-${String(i).padStart(3, '0')}`;
      const backend = pod(ns, `${name}-0`, `${name}-backend`, `10.250.${Math.floor(i / 200)}.${(i % 200) + 10}`);
      byIp.set(backend.ip, backend);
      const e = ep(backend, 8080, { weight: 1000, healthy: i !== 7 });
      ports.push(clusterPort(`${ns}/${name}`, { clusterIP: `10.97.${Math.floor(i / 200)}.${(i % 200) + 1}`, port: 80, mode: 'equal' }, [e], [{ t: now, weights: { [e.key]: 1000 } }]));
      // Twenty Services have traffic.
      if (i % 15 === 0) recs.push(via(podRecord(PODS.frontend, backend, { dstPort: 8080 }), `10.97.${Math.floor(i / 200)}.${(i % 200) + 1}`, 80, `${ns}/${name}`));
    }
    await writeLbStatus(many, lbNodeStatus('node-0', ports));
    statusDir = many;
    dash.pipeline.ingest(recs);
    dash.pipeline.flush();

    const page = await dash.browser.newPage({ viewport: { width: 1500, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.addInitScript({ content: 'globalThis.__name = (f) => f;' });
    await page.goto(dash.url, { waitUntil: 'domcontentloaded', timeout: 15_000 });
    // 300 reported, and the first test's three Services, still in the window's flows but no
    // longer reported by any agent (drawn as seen in flows only).
    await page.waitForFunction(() => /of 303/.test(document.querySelector('[data-testid=service-count]')?.textContent ?? ''), undefined, { timeout: 10_000 });
    const shown = await page.locator('[data-testid=service-node]').evaluateAll((els) => els.map((e) => e.getAttribute('data-service') ?? ''));
    assert.equal(shown.length, 40, 'at most 40 Service nodes');
    for (let i = 0; i < 300; i += 15) assert.ok(shown.includes(`team-${String(i % 10).padStart(2, '0')}/svc-${String(i).padStart(3, '0')}`), `busy svc-${i} is drawn`);
    assert.ok(shown.includes('team-07/svc-007'), 'the Service with a failing endpoint is drawn');
    assert.match(await page.locator('[data-testid=service-count]').innerText(), /40 of 303 \(busiest, failing\)/);
    await page.screenshot({ path: 'artifacts/dashboard-services-300.png' });
    assert.deepEqual(overlapping(await labelBoxes(page)), [], 'no label overlaps another');

    await page.locator('[data-testid=service-filter]').fill('svc-2');
    await page.waitForFunction(() => /of 303/.test(document.querySelector('[data-testid=service-count]')?.textContent ?? '') && document.querySelectorAll('[data-testid=service-node]').length === 40, undefined, { timeout: 5000 });
    await page.locator('[data-testid=service-filter]').fill('svc-123');
    await page.waitForFunction(() => document.querySelectorAll('[data-testid=service-node]').length === 1, undefined, { timeout: 5000 });
    assert.equal(await page.locator('[data-testid=service-node]').getAttribute('data-service'), 'team-03/svc-123', 'a quiet Service is found by name');
    await page.locator('[data-testid=service-node]').click();
    await page.waitForSelector('[data-testid=service-panel]', { timeout: 5000 });
    assert.deepEqual(errors, []);
    await page.close();
  } finally {
    statusDir = dir;
    rmSync(many, { recursive: true, force: true });
  }
});
