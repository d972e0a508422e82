// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// Webhooks that say when they fail, over real sockets: the configured `webhook.timeout` is
// honoured (a receiver slower than the old fixed 2 s, within its timeout, gets the alert once),
// failures are logged, counted in /metrics and shown on /api/alerts, and rules naming nothing
// the cluster has are warned about at load.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { startVisibility, type Visibility } from '../src/api/visibility.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';
import type { WebhookStatus } from '../src/flows/alerts.js';

const c = syntheticCluster(3, 3, 2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Receiver {
  url: string;
  requests: { delivery: string; attempt: string; body: string }[];
  close(): Promise<void>;
}

async function receiver(answer: (req: IncomingMessage) => Promise<number>): Promise<Receiver> {
  const requests: Receiver['requests'] = [];
  const server: Server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      requests.push({ delivery: String(req.headers['x-weir-delivery']), attempt: String(req.headers['x-weir-attempt']), body });
      void answer(req).then((status) => {
        if (!res.destroyed) res.writeHead(status).end();
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return {
    url: `http://127.0.0.1:${addr.port}/hook`,
    requests,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function withServer(alertsYaml: string, body: (vis: Visibility, log: string[]) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'weir-webhook-'));
  const alertsFile = join(dir, 'alerts.yaml');
  writeFileSync(alertsFile, alertsYaml);
  const log: string[] = [];
  const vis = await startVisibility({ labDir: dir, port: 0, sources: false, uiDir: join(dir, 'none'), alertsFile, log: (l) => log.push(l) });
  try {
    await body(vis, log);
  } finally {
    await vis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function alertsApi(vis: Visibility): Promise<{ alerts: { rule: string }[]; webhook: WebhookStatus | null }> {
  return (await (await fetch(`${vis.url}/api/alerts`)).json()) as { alerts: { rule: string }[]; webhook: WebhookStatus | null };
}

const deny = () => podRecord(c.pods[0]!, c.pods[7]!, { verdict: 'DROPPED' });

test('a webhook slower than 2 s but within its configured timeout gets the alert exactly once', { timeout: 60_000 }, async () => {
  const hook = await receiver(async () => {
    await sleep(3_000);
    return 200;
  });
  try {
    await withServer(
      `webhook: { url: "${hook.url}", timeout: 6s }\nrules:\n  - { name: x-denied, kind: denied-rate, namespace: x, threshold: 0, window: 1m }\n`,
      async (vis, log) => {
        vis.pipeline.ingest([deny()]);
        vis.pipeline.flush();
        for (let i = 0; i < 100 && (await alertsApi(vis)).webhook?.delivered !== 1; i++) await sleep(200);
        // Longer than the old fixed 2 s timeout plus its first retry (0.5 s): a duplicate would be here by now.
        await sleep(4_000);
        assert.equal(hook.requests.length, 1, `one delivery, got ${hook.requests.length}`);
        assert.equal(hook.requests[0]?.attempt, '1');
        assert.match(hook.requests[0]?.body ?? '', /"rule":"x-denied"/);
        const api = await alertsApi(vis);
        assert.equal(api.webhook?.delivered, 1);
        assert.equal(api.webhook?.failures, 0);
        assert.equal(api.webhook?.timeoutMs, 6_000);
        assert.deepEqual(log.filter((l) => l.startsWith('weir alerts: webhook')), []);
      },
    );
  } finally {
    await hook.close();
  }
});

test('a failing webhook is logged, counted in /metrics and shown on /api/alerts; the alert stays queued for retry', { timeout: 60_000 }, async () => {
  const hook = await receiver(async () => 500);
  try {
    await withServer(
      `webhook: { url: "${hook.url}", timeout: 2s, maxAttempts: 50 }\nrules:\n  - { name: x-denied, kind: denied-rate, namespace: x, threshold: 0, window: 1m }\n`,
      async (vis, log) => {
        vis.pipeline.ingest([deny()]);
        vis.pipeline.flush();
        for (let i = 0; i < 100 && hook.requests.length < 2; i++) await sleep(200);
        assert.ok(hook.requests.length >= 2, 'retried');
        assert.equal(new Set(hook.requests.map((r) => r.delivery)).size, 1, 'retries carry the same delivery id');
        const metrics = await (await fetch(`${vis.url}/metrics`)).text();
        const failures = Number(/^weir_webhook_failures_total (\d+)/m.exec(metrics)?.[1]);
        assert.ok(failures >= 2, `weir_webhook_failures_total ${failures}`);
        assert.match(metrics, /^weir_webhook_queue_depth 1$/m);
        const api = await alertsApi(vis);
        assert.equal(api.alerts[0]?.rule, 'x-denied');
        assert.ok((api.webhook?.failures ?? 0) >= 2);
        assert.equal(api.webhook?.queued, 1);
        assert.equal(api.webhook?.lastError, 'HTTP 500');
        assert.ok(log.some((l) => /^weir alerts: webhook http:\/\/127\.0\.0\.1:\d+\/hook: alert \d+, attempt 1: HTTP 500; retrying in \d+ s$/.test(l)), log.join('\n'));
      },
    );
  } finally {
    await hook.close();
  }
});

test('a webhook that never answers fails by its timeout, and the log says so', { timeout: 60_000 }, async () => {
  const hook = await receiver(() => new Promise<number>(() => undefined));
  try {
    await withServer(`webhook: { url: "${hook.url}", timeout: 1s }\nrules:\n  - { name: any-denied, kind: denied-rate, threshold: 0, window: 1m }\n`, async (vis, log) => {
      vis.pipeline.ingest([deny()]);
      vis.pipeline.flush();
      for (let i = 0; i < 100 && !log.some((l) => l.includes('no answer within')); i++) await sleep(100);
      assert.ok(log.some((l) => l.includes('attempt 1: no answer within 1000 ms (webhook.timeout)')), log.join('\n'));
      assert.match((await alertsApi(vis)).webhook?.lastError ?? '', /no answer within 1000 ms/);
    });
  } finally {
    await hook.close();
  }
});

test('rules naming no namespace, workload or policy of the cluster are warned about at load', async () => {
  await withServer(
    [
      'rules:',
      '  - { name: typo, kind: denied-rate, namespace: shopp, threshold: 5, window: 1m }',
      '  - { name: gone, kind: policy-unused, policy: NetworkPolicy shop/old, for: 1h }',
      '  - { name: pair, kind: bytes-between, from: { workload: "shop/cart[Deployment]" }, to: { namespace: data }, threshold: 1, window: 1m }',
      '',
    ].join('\n'),
    async (_vis, log) => {
      const warnings = log.filter((l) => l.startsWith('weir alerts: warning:'));
      assert.equal(warnings.length, 4, warnings.join('\n'));
      assert.match(warnings[0] ?? '', /rules\[0\]\.namespace: no namespace "shopp" in the cluster: the rule "typo" cannot match until it exists/);
      assert.match(warnings[1] ?? '', /rules\[1\]\.policy: no policy "NetworkPolicy shop\/old"/);
      assert.match(warnings[2] ?? '', /rules\[2\]\.from\.workload: no workload "shop\/cart\[Deployment\]"/);
    },
  );
});
