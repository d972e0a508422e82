// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { AlertConfigError, AlertEngine, WebhookDispatcher, loadAlertConfig, parseAlertConfig } from '../src/flows/alerts.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-alerts-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const c = syntheticCluster(3, 3, 2);
const pod = (ns: string, wl: string) => c.pods.find((p) => p.namespace === ns && p.name === `${wl}-0`)!;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Hook {
  server: Server;
  url: string;
  bodies: { alert: { rule: string; state: string; value: number } }[];
  close: () => Promise<void>;
}

async function hook(handler?: (req: IncomingMessage, res: ServerResponse, n: number) => void, port = 0): Promise<Hook> {
  const bodies: Hook['bodies'] = [];
  let n = 0;
  const server = createServer((req, res) => {
    let b = '';
    req.on('data', (d: Buffer) => (b += d.toString()));
    req.on('end', () => {
      n++;
      if (handler) return handler(req, res, n);
      bodies.push(JSON.parse(b) as Hook['bodies'][number]);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return {
    server,
    url,
    bodies,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

test('alert config: YAML validated, errors name file and field', async () => {
  const cfg = parseAlertConfig(`
webhook: { url: http://127.0.0.1:9/x }
rules:
  - { name: burst, kind: denied-rate, namespace: x, threshold: 5, window: 1m }
  - { name: egress, kind: new-external, cidrs: [0.0.0.0/0] }
  - { name: idle, kind: policy-unused, policy: NetworkPolicy x/a, for: 1h }
  - { name: big, kind: bytes-between, from: { namespace: x }, to: { namespace: y }, threshold: 1000, window: 5m }
`);
  assert.equal(cfg.rules.length, 4);
  const bad = (yaml: string, field: RegExp) =>
    assert.throws(() => parseAlertConfig(yaml, 'alerts.yaml'), (e: unknown) => e instanceof AlertConfigError && e.file === 'alerts.yaml' && field.test(e.field));
  bad('rules: [{ name: a, kind: denied-rate, threshold: -1, window: 1m }]', /^rules\[0\]\.threshold$/);
  bad('rules: [{ name: a, kind: denied-rate, threshold: 1, window: soon }]', /^rules\[0\]\.window$/);
  bad('rules: [{ name: a, kind: nope }]', /^rules\[0\]\.kind$/);
  bad('rules: [{ name: a, kind: new-external, cidrs: [10.0.0.0/33] }]', /^rules\[0\]\.cidrs\[0\]$/);
  bad('rules: [{ name: a, kind: policy-unused, policy: NetworkPolicy x/p, for: 1h }, { name: a, kind: policy-unused, policy: NetworkPolicy x/q, for: 1h }]', /^rules\[1\]\.name$/);
  bad('rules: [{ name: a, kind: bytes-between, from: {}, to: { namespace: y }, threshold: 1, window: 1m }]', /^rules\[0\]\.from$/);
  bad('rules: [ {', /^line \d+$/);
  const f = join(dir, 'bad.yaml');
  writeFileSync(f, 'rules: [{ name: a, kind: denied-rate, threshold: 1 }]');
  await assert.rejects(loadAlertConfig(f), (e: unknown) => e instanceof AlertConfigError && e.file === f && e.field === 'rules[0].window');
});

test('denied-rate fires exactly when the threshold is crossed; webhook gets it once; resolves with cooldown', async () => {
  const h = await hook();
  const store = new SqliteFlowStore(join(dir, 'rate.db'));
  const pipeline = new FlowPipeline({ store });
  const dispatcher = new WebhookDispatcher({ store }).start();
  const engine = new AlertEngine({ store, pipeline, webhookUrl: h.url, onQueued: dispatcher.kick, rules: parseAlertConfig('rules: [{ name: burst, kind: denied-rate, namespace: x, threshold: 5, window: 2s, cooldown: 10s }]').rules });
  const published: string[] = [];
  pipeline.subscribe((b) => b.alerts.forEach((a) => published.push(`${a.rule}:${a.state}`)));
  const drop = () => podRecord(pod('x', 'a'), pod('y', 'b'), { verdict: 'DROPPED' });
  for (let i = 0; i < 5; i++) {
    pipeline.ingest(drop());
    pipeline.ingest(podRecord(pod('x', 'a'), pod('y', 'b'))); // forwarded: never counts
    pipeline.ingest(podRecord(pod('z', 'a'), pod('y', 'b'), { verdict: 'DROPPED' })); // other namespace
    pipeline.flush();
  }
  assert.equal(store.listAlerts().length, 0, 'exactly at the threshold: not yet');
  pipeline.ingest(drop());
  pipeline.flush();
  const fired = store.listAlerts();
  assert.equal(fired.length, 1);
  assert.equal(fired[0]?.state, 'firing');
  assert.equal(fired[0]?.value, 6);
  pipeline.ingest([drop(), drop()]);
  pipeline.flush();
  assert.equal(store.listAlerts().length, 1, 'a firing alert does not fire again');
  await until(() => h.bodies.length === 1);
  assert.deepEqual(h.bodies.map((b) => [b.alert.rule, b.alert.state, b.alert.value]), [['burst', 'firing', 6]]);
  assert.deepEqual(engine.rules(), [{ name: 'burst', kind: 'denied-rate', state: 'firing' }]);
  // Window passes: resolves; within the cooldown, a new burst does not fire.
  await sleep(3100);
  pipeline.flush();
  assert.equal(store.listAlerts()[0]?.state, 'resolved');
  for (let i = 0; i < 7; i++) pipeline.ingest(drop());
  pipeline.flush();
  assert.equal(store.listAlerts().length, 1, 'cooldown holds');
  await until(() => h.bodies.length === 2);
  assert.equal(h.bodies[1]?.alert.state, 'resolved');
  assert.deepEqual(published, ['burst:firing', 'burst:resolved']);
  await dispatcher.stop();
  await h.close();
  store.close();
});

test('a dead webhook does not slow ingestion; jobs survive a restart and are retried', async (t) => {
  // A webhook that accepts the connection and never answers.
  const hang = await hook(() => undefined);
  const path = join(dir, 'dead.db');
  let store = new SqliteFlowStore(path);
  let pipeline = new FlowPipeline({ store });
  let dispatcher = new WebhookDispatcher({ store, timeoutMs: 300, baseDelayMs: 100 }).start();
  const receivers: Awaited<ReturnType<typeof hook>>[] = [];
  // Whatever fails below, no dispatcher loop, server or database is left to keep the file alive.
  t.after(async () => {
    await dispatcher.stop().catch(() => undefined);
    await hang.close().catch(() => undefined);
    for (const r of receivers) await r.close().catch(() => undefined);
    try {
      store.close();
    } catch {
      // already closed by the test
    }
  });
  new AlertEngine({ store, pipeline, webhookUrl: hang.url, onQueued: dispatcher.kick, rules: parseAlertConfig('rules: [{ name: egress, kind: new-external, cidrs: [0.0.0.0/0] }]').rules });
  const t0 = performance.now();
  for (let i = 0; i < 50; i++) {
    const batch = [];
    for (let j = 0; j < 400; j++) {
      const r = podRecord(pod('x', 'a'), pod('y', 'b'));
      // 50 distinct external destinations → 50 alerts queued for the hanging webhook.
      batch.push(j === 0 ? { ...r, dst: { ip: `203.0.113.${i + 1}`, external: true } } : r);
    }
    pipeline.ingest(batch);
    pipeline.flush();
  }
  const elapsed = performance.now() - t0;
  assert.equal(store.stats().flows, 20_000);
  assert.equal(store.listAlerts({ limit: 1000 }).length, 50, 'new-external fires once per new destination');
  assert.ok(elapsed < 3000, `ingesting 20k flows took ${elapsed.toFixed(0)} ms with a dead webhook`);
  await until(() => dispatcher.failures >= 1, 3000);
  await dispatcher.stop();
  assert.equal(store.stats().webhookPending, 50);
  store.close();
  await hang.close();

  // Restart with the receiver back up at the same address: everything queued is delivered, nothing re-fires.
  const h = await hook(undefined, Number(new URL(hang.url).port));
  receivers.push(h);
  store = new SqliteFlowStore(path);
  pipeline = new FlowPipeline({ store });
  dispatcher = new WebhookDispatcher({ store, baseDelayMs: 100 }).start();
  new AlertEngine({ store, pipeline, webhookUrl: h.url, onQueued: dispatcher.kick, rules: parseAlertConfig('rules: [{ name: egress, kind: new-external, cidrs: [0.0.0.0/0] }]').rules });
  await until(() => h.bodies.length === 50, 8000);
  assert.equal(new Set(h.bodies.map((b) => JSON.stringify(b))).size, 50);
  pipeline.ingest({ ...podRecord(pod('x', 'a'), pod('y', 'b')), dst: { ip: '203.0.113.1', external: true } });
  pipeline.flush();
  assert.equal(store.listAlerts({ limit: 1000 }).length, 50, 'seen destinations persisted across restart');
  // The receiver has all 50 bodies; the dispatcher marks the last job delivered when its
  // response arrives, a moment later.
  await until(() => store.stats().webhookPending === 0, 3000);
  assert.equal(store.stats().webhookPending, 0);
  await dispatcher.stop();
  await h.close();
  store.close();
});

test('webhook retries with backoff until the receiver recovers', async () => {
  const h = await hook((_req, res, n) => res.writeHead(n < 3 ? 503 : 204).end());
  const store = new SqliteFlowStore(join(dir, 'retry.db'));
  const d = new WebhookDispatcher({ store, baseDelayMs: 50 }).start();
  const a = store.insertAlert({ rule: 'r', kind: 'denied-rate', state: 'firing', firedAt: Date.now(), message: 'm', value: 1, threshold: 0, labels: {} });
  store.enqueueWebhook(a.id, h.url, '{}', Date.now());
  d.kick();
  await until(() => d.delivered === 1, 5000);
  assert.equal(d.failures, 2);
  await d.stop();
  await h.close();
  store.close();
});

test('policy-unused fires after the idle period and resolves on a hit; bytes-between', () => {
  let now = Date.now();
  const store = new SqliteFlowStore(join(dir, 'unused.db'));
  const pipeline = new FlowPipeline({ store, now: () => now });
  new AlertEngine({
    store,
    pipeline,
    now: () => now,
    rules: parseAlertConfig(`rules:
  - { name: idle, kind: policy-unused, policy: NetworkPolicy y/allow-x, for: 1m }
  - { name: big, kind: bytes-between, from: { namespace: x }, to: { workload: "y/b[Deployment]" }, threshold: 3000, window: 1m }`).rules,
  });
  pipeline.flush();
  assert.equal(store.listAlerts().length, 0);
  now += 60_000;
  pipeline.flush();
  assert.equal(store.listAlerts()[0]?.rule, 'idle');
  assert.equal(store.listAlerts()[0]?.state, 'firing');
  pipeline.ingest([podRecord(pod('x', 'a'), pod('y', 'b'), { time: now, policy: 'NetworkPolicy y/allow-x', rule: 'ingress[0]', bytes: 1500 }), podRecord(pod('x', 'b'), pod('y', 'b'), { time: now, bytes: 1500 })]);
  pipeline.flush();
  assert.equal(store.listAlerts({ state: 'resolved' })[0]?.rule, 'idle');
  assert.equal(store.listAlerts({ state: 'firing' }).length, 0, '3000 bytes is not above 3000');
  pipeline.ingest(podRecord(pod('x', 'c'), pod('y', 'b'), { time: now, bytes: 1 }));
  pipeline.flush();
  const big = store.listAlerts({ state: 'firing' })[0];
  assert.equal(big?.rule, 'big');
  assert.equal(big?.value, 3001);
  store.close();
});
