// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// The dashboard in real Chromium under the server's Content-Security-Policy, with a token: the
// browser is sent to /login, signs in with the token, and the map then renders and follows the
// live stream (fetch and EventSource carry the session cookie); no CSP violation is reported.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createServer } from '../src/api/server.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';
import { ensureUiBuilt } from '../src/ui/build.js';
import { launchChromium } from './helpers/browser.js';

const TOKEN = 'dashboard-test-token-9f8e7d6c5b4a';

test('dashboard with a token: login page, then the map renders and updates live under the CSP', { timeout: 120_000 }, async () => {
  const uiDir = ensureUiBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'weir-dash-sec-'));
  const store = new SqliteFlowStore(join(dir, 'flows.db'));
  const pipeline = new FlowPipeline({ store, flushMs: 100 }).start();
  const app = createServer({ store, pipeline, uiDir, access: { token: TOKEN, loopbackOnly: true } });
  const browser = await launchChromium();
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    assert.ok(addr && typeof addr === 'object');
    const url = `http://127.0.0.1:${addr.port}/`;
    const page = await browser.newPage();
    const errors: string[] = [];
    // Failed loads are checked by URL below (the browser's own /favicon.ico probe is no error of ours).
    page.on('console', (m) => {
      if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) errors.push(m.text());
    });
    page.on('response', (r) => {
      if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(`${r.status()} ${r.url()}`);
    });
    page.on('pageerror', (e) => errors.push(e.message));

    await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 30_000 });
    assert.match(page.url(), /\/login$/, 'sent to the login page');
    await page.fill('input[name=token]', 'not-the-token');
    await page.click('button[type=submit]');
    await page.waitForSelector('[role=alert]', { timeout: 10_000 });
    errors.length = 0; // the 401 of the wrong token is logged by the browser as a failed load
    await page.fill('input[name=token]', TOKEN);
    await Promise.all([page.waitForURL(url, { timeout: 10_000 }), page.click('button[type=submit]')]);
    await page.waitForSelector('[data-testid=map]', { timeout: 30_000 });
    await page.waitForSelector('[data-testid=status].up', { timeout: 30_000 });

    const c = syntheticCluster(3, 3, 2);
    for (let i = 0; i < 20 && (await page.locator('[data-testid=group-node]').count()) < 2; i++) {
      pipeline.ingest([podRecord(c.pods[0]!, c.pods[7]!), podRecord(c.pods[2]!, c.pods[12]!, { verdict: 'DROPPED' })]);
      await page.waitForTimeout(250);
    }
    assert.ok((await page.locator('[data-testid=group-node]').count()) >= 2, 'live flows reach the map through the authenticated stream');
    const csp = await page.evaluate(async () => (await fetch('api/health')).headers.get('content-security-policy'));
    assert.match(csp ?? '', /script-src 'self'/);
    assert.deepEqual(errors, [], 'no console errors: no CSP violation, no failed request');

    // The API docs render under their own CSP too.
    await page.goto(`${url}docs`, { waitUntil: 'load', timeout: 30_000 });
    await page.waitForSelector('.swagger-ui .info', { timeout: 30_000 });
    assert.deepEqual(
      errors.filter((e) => /Content Security Policy|Refused to/.test(e)),
      [],
      'the docs page needs nothing the CSP refuses',
    );
  } finally {
    await browser.close();
    await app.close();
    pipeline.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
