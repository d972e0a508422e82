// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// Slow live-stream clients cannot grow the server's memory. A server in its own process takes a
// steady synthetic load of 5,000 flows/s; 200 clients open /api/stream over real TCP sockets,
// read the headers and then stop reading, for 30 s. Stated bound: the server's RSS stays within
// 200 MiB of its RSS under the same load before the clients came (an unbounded queue grew by
// about 2.8 GiB in 30 s here). Meanwhile a reading client keeps getting every batch, and clients that stay
// behind are disconnected and counted. In a second test, a client that stops and then resumes
// gets a `gap` event saying what it missed, and the cap on open streams answers 503 beyond it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { createServer } from '../src/api/server.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { readSse } from '../src/flows/sse-client.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const CLIENTS = Number(process.env.WEIR_TEST_SSE_CLIENTS ?? 200);
const SECONDS = Number(process.env.WEIR_TEST_SSE_SECONDS ?? 30);
const RATE = 5_000;
const BOUND_MIB = 200;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) / 1024;
}

/** Opens the stream, waits for the response headers, then never reads again (unless resumed). */
function stuckClient(port: number): Promise<Socket> {
  return new Promise((done, fail) => {
    const s = connect({ host: '127.0.0.1', port }, () => s.write('GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n'));
    s.once('data', (d: Buffer) => {
      s.pause();
      if (!d.toString('latin1').startsWith('HTTP/1.1 200')) fail(new Error(`stream refused: ${d.toString('latin1').split('\r\n')[0] ?? ''}`));
      else done(s);
    });
    s.on('error', () => undefined);
    s.setTimeout(0);
  });
}

async function metric(base: string, name: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && !line.startsWith('#')) sum += Number(line.split(' ').pop());
  return sum;
}

test(`${CLIENTS} non-reading stream clients under ${RATE} flows/s for ${SECONDS} s keep the server's RSS within ${BOUND_MIB} MiB of its baseline`, { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-sse-load-'));
  let child: ChildProcess | undefined;
  const sockets: Socket[] = [];
  const ac = new AbortController();
  try {
    child = spawn(process.execPath, ['--import', 'tsx', resolve('test/helpers/flow-load-server.ts'), dir, String(RATE)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = child.pid ?? 0;
    const base = await new Promise<string>((done, fail) => {
      let out = '';
      child?.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (line) done((JSON.parse(line) as { url: string }).url);
      });
      child?.once('exit', (code) => fail(new Error(`load server exited ${String(code)}`)));
    });
    const port = Number(new URL(base).port);

    // Warm up under load, then take the baseline.
    await sleep(5_000);
    const baseline = rssMiB(pid);

    // A well-behaved reader throughout.
    let readerBatches = 0;
    let readerGaps = 0;
    void (async () => {
      for await (const ev of readSse(`${base}/api/stream`, ac.signal)) {
        if (ev.event === 'batch') readerBatches++;
        if (ev.event === 'gap') readerGaps++;
      }
    })().catch(() => undefined);

    for (let i = 0; i < CLIENTS; i++) sockets.push(await stuckClient(port));
    const clientsOpen = await metric(base, 'weir_stream_clients');
    assert.ok(clientsOpen >= CLIENTS, `all ${CLIENTS} streams accepted (open: ${clientsOpen})`);

    const start = Date.now();
    let peak = baseline;
    const samples: number[] = [];
    while (Date.now() - start < SECONDS * 1000) {
      await sleep(1_000);
      const rss = rssMiB(pid);
      samples.push(Math.round(rss));
      peak = Math.max(peak, rss);
    }
    const dropped = await metric(base, 'weir_stream_dropped_batches_total');
    const slow = await metric(base, 'weir_stream_disconnects_total{reason="slow"}');
    const growth = peak - baseline;
    process.stderr.write(`# baseline ${baseline.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB (+${growth.toFixed(0)}), dropped batches ${dropped}, slow disconnects ${slow}, reader batches ${readerBatches}, RSS samples ${samples.join(' ')}\n`);

    assert.ok(growth <= BOUND_MIB, `RSS grew by ${growth.toFixed(0)} MiB (bound ${BOUND_MIB} MiB); samples ${samples.join(' ')}`);
    assert.ok(dropped > 0, 'batches were dropped for the stuck clients');
    assert.ok(slow >= CLIENTS / 2, `clients that stayed behind were disconnected (${slow})`);
    // ~5 batches/s for 30 s; a reader that keeps up is never dropped.
    assert.ok(readerBatches >= SECONDS * 3, `the reading client kept receiving (${readerBatches} batches)`);
    assert.equal(readerGaps, 0, 'the reading client never fell behind');
  } finally {
    ac.abort();
    for (const s of sockets) s.destroy();
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child?.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child?.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a client that falls behind and catches up gets a gap event first; open streams are capped (503 with Retry-After)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-sse-cap-'));
  const store = new SqliteFlowStore(join(dir, 'flows.db'));
  const pipeline = new FlowPipeline({ store }).start();
  const app = createServer({ store, pipeline, uiDir: join(dir, 'none'), stream: { maxClients: 3, maxQueuedBytes: 64 * 1024, maxBehindMs: 120_000 } });
  const ac = new AbortController();
  try {
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    assert.ok(addr && typeof addr === 'object');
    const base = `http://127.0.0.1:${addr.port}`;
    // Fill the stuck client's socket until the server drops batches for it, then read again.
    const stuck = await stuckClient(addr.port);
    const cluster = syntheticCluster(4, 4, 4);
    for (let round = 0; round < 400 && (await metric(base, 'weir_stream_dropped_batches_total')) === 0; round++) {
      pipeline.ingest(Array.from({ length: 2_000 }, (_, i) => podRecord(cluster.pods[i % cluster.pods.length]!, cluster.pods[(i * 5 + 1) % cluster.pods.length]!)));
      pipeline.flush();
      await sleep(20);
    }
    assert.ok((await metric(base, 'weir_stream_dropped_batches_total')) > 0, 'the server dropped batches for the stuck client');
    let text = '';
    stuck.on('data', (d: Buffer) => (text += d.toString('latin1')));
    stuck.resume();
    for (let i = 0; i < 200 && !text.includes('event: gap'); i++) {
      pipeline.ingest([podRecord(cluster.pods[0]!, cluster.pods[1]!)]);
      pipeline.flush();
      await sleep(50);
    }
    assert.match(text, /event: gap\ndata: \{"since":\d+,"batches":[1-9]\d*,"flows":[1-9]\d*,"alerts":0\}\n\n(?:\r\n[0-9a-f]+\r\n)?event: batch/, 'a client that caught up is told what it missed, then gets batches again');
    stuck.destroy();
    await sleep(100);

    const open = await Promise.all([0, 1, 2].map(() => fetch(`${base}/api/stream`, { signal: ac.signal })));
    for (const r of open) assert.equal(r.status, 200);
    const refused = await fetch(`${base}/api/stream`);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '10');
    assert.match(((await refused.json()) as { message: string }).message, /too many live streams open \(3\)/);
    assert.match(await (await fetch(`${base}/metrics`)).text(), /weir_stream_refused_total 1/);
  } finally {
    ac.abort();
    await app.close();
    pipeline.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
