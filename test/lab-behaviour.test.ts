// suite: lab (needs root: a real network namespace; `npm run test:lab`)
// Slow and flaky pod servers (root): a real lab server in a namespace of its own, made slow,
// failing or stalling through its control file, changed live, and measured by a real client
// in the same namespace.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { clearBehaviour, controlDir, setBehaviour } from '../src/lab/behaviour.js';
import { startServer } from '../src/lab/processes.js';
import { cleanupPrefix, netnsSkipReason, removeDir, tempLabDir, testPrefix } from './helpers/netns.js';

const skip = await netnsSkipReason();

/** `n` sequential connections to 127.0.0.1:80 in the namespace: outcome and time of each. */
const CLIENT = `
const net = require('node:net');
const n = Number(process.argv[1]);
const gapMs = Number(process.argv[2] ?? 0);
const parallel = process.argv[3] === 'parallel';
const out = [];
function one() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let data = '';
    const s = net.connect({ host: '127.0.0.1', port: 80 });
    s.setEncoding('utf8');
    s.on('data', (d) => (data += d));
    s.on('error', (e) => resolve({ ok: false, error: e.code, ms: performance.now() - t0 }));
    s.on('end', () => resolve({ ok: data.length > 0, ms: performance.now() - t0 }));
  });
}
(async () => {
  if (parallel) {
    out.push(...(await Promise.all(Array.from({ length: n }, one))));
    process.stdout.write(JSON.stringify(out));
    return;
  }
  for (let i = 0; i < n; i++) {
    out.push(await one());
    if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
  }
  process.stdout.write(JSON.stringify(out));
})();
`;

interface Result {
  ok: boolean;
  error?: string;
  ms: number;
}

function client(netns: string, n: number, gapMs = 0, parallel = false): Promise<Result[]> {
  return new Promise((resolve, reject) => {
    execFile('ip', ['netns', 'exec', netns, process.execPath, '-e', CLIENT, String(n), String(gapMs), parallel ? 'parallel' : 'serial'], { timeout: 60_000 }, (error, stdout) => {
      if (error) reject(error);
      else resolve(JSON.parse(stdout) as Result[]);
    });
  });
}

function ipNetns(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => execFile('ip', args, (e) => (e ? reject(e) : resolve())));
}

describe('lab pod behaviour', { skip }, () => {
  test('delay, error rate and stalls are set and cleared live through the control file', async (t) => {
    const prefix = testPrefix();
    const dir = await tempLabDir();
    const netns = `${prefix}beh`;
    const pids: number[] = [];
    t.after(async () => {
      await cleanupPrefix(prefix, pids);
      await removeDir(dir);
    });
    await ipNetns(['netns', 'add', netns]);
    await ipNetns(['-n', netns, 'link', 'set', 'lo', 'up']);
    const pid = await startServer({
      netns,
      identity: 't/p',
      ports: [{ port: 80, protocol: 'TCP' }],
      logDir: join(dir, 'logs'),
      controlDir: controlDir(dir),
    });
    pids.push(pid);

    const normal = await client(netns, 20);
    assert.ok(normal.every((r) => r.ok), JSON.stringify(normal));
    const normalMedian = normal.map((r) => r.ms).sort((a, b) => a - b)[10];
    assert.ok(normalMedian < 50, `normal median ${normalMedian} ms`);

    await setBehaviour(dir, netns, { delayMs: 150 });
    await sleep(300);
    const slow = await client(netns, 5);
    assert.ok(slow.every((r) => r.ok && r.ms >= 145), JSON.stringify(slow));

    await setBehaviour(dir, netns, { errorRate: 1 });
    await sleep(300);
    const failing = await client(netns, 10);
    assert.ok(failing.every((r) => !r.ok && r.error === 'ECONNRESET' && r.ms < 100), JSON.stringify(failing));

    await setBehaviour(dir, netns, { errorRate: 0.5 });
    await sleep(300);
    const half = await client(netns, 200);
    const failed = half.filter((r) => !r.ok).length;
    // Binomial(200, 0.5): 60–140 holds with probability 1 − 1e-8.
    assert.ok(failed > 60 && failed < 140, `${failed} of 200 failed`);

    // A stall: replies held during the first 400 ms of every 500 ms.
    await setBehaviour(dir, netns, { stall: { everyMs: 500, forMs: 400 } });
    await sleep(300);
    // Requests 70 ms apart: some land in a stall and wait for its end, some between stalls.
    const stalled = await client(netns, 12, 70);
    assert.ok(stalled.every((r) => r.ok));
    assert.ok(stalled.filter((r) => r.ms > 50).length >= 3, JSON.stringify(stalled));
    assert.ok(stalled.some((r) => r.ms < 30), JSON.stringify(stalled));
    assert.ok(stalled.every((r) => r.ms < 450), JSON.stringify(stalled));

    // Limited capacity: one reply in service at a time, so four at once finish one after another.
    await setBehaviour(dir, netns, { delayMs: 100, concurrency: 1 });
    await sleep(300);
    const queued = (await client(netns, 4, 0, true)).map((r) => r.ms).sort((a, b) => a - b);
    assert.ok(queued[0] >= 95 && queued[3] >= 390, `queued latencies ${queued.join(', ')}`);

    await clearBehaviour(dir, netns);
    await sleep(300);
    const back = await client(netns, 20);
    assert.ok(back.every((r) => r.ok && r.ms < 100), JSON.stringify(back));

    await assert.rejects(setBehaviour(dir, netns, { errorRate: 2 }), /errorRate/);
  });
});
