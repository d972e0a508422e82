// A dashboard under test: a real flow store (SQLite in a temp dir), pipeline and HTTP server
// on a free loopback port with the built UI, and Debian's Chromium; `close()` removes it all.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Browser } from 'playwright-core';
import { createServer, type ServerOptions } from '../../src/api/server.js';
import { FlowPipeline } from '../../src/flows/pipeline.js';
import { SqliteFlowStore } from '../../src/flows/sqlite-store.js';
import { ensureUiBuilt } from '../../src/ui/build.js';
import { launchChromium } from './browser.js';

export interface DashboardFixture {
  readonly store: SqliteFlowStore;
  readonly pipeline: FlowPipeline;
  readonly app: FastifyInstance;
  readonly browser: Browser;
  readonly url: string;
  close(): Promise<void>;
}

/** `flushMs`: the pipeline's batch interval (default: the production one). */
export async function startDashboard(opts: { flushMs?: number; services?: ServerOptions['services'] } = {}): Promise<DashboardFixture> {
  const uiDir = ensureUiBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'weir-dash-'));
  const store = new SqliteFlowStore(join(dir, 'flows.db'));
  const pipeline = new FlowPipeline({ store, ...(opts.flushMs !== undefined ? { flushMs: opts.flushMs } : {}) }).start();
  const app = createServer({ store, pipeline, uiDir, ...(opts.services ? { services: opts.services } : {}) });
  let browser: Browser | undefined;
  const close = async (): Promise<void> => {
    await browser?.close();
    await app.close();
    pipeline.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    assert.ok(addr && typeof addr === 'object', 'server listens on a TCP port');
    browser = await launchChromium();
    return { store, pipeline, app, browser, url: `http://127.0.0.1:${addr.port}`, close };
  } catch (e) {
    await close();
    throw e;
  }
}
