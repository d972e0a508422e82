// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// The visibility side against a real lab (root only; skipped otherwise): `weir lab up` with
// agents and `weir serve`, real connections through the kernel, and every answer read back
// through the server's real HTTP API — flows, per-policy counters, alerts with a real webhook
// receiver, Prometheus metrics. Everything this file creates (namespaces, agents, servers,
// the serve process, the webhook listener, the lab dir) is removed in t.after, also on failure.
//
// Counting connections exactly: the kernel counts *first packets* of connections, both in the
// `c_<id>` counters and in the `denied` set (established packets are accepted before any
// policy chain). A dropped SYN gets no reply, so the client retransmits it after the initial
// RTO (1 s) and every retransmission is another first packet. The probes here give up after
// 500 ms, so each denied connect sends exactly one SYN: connections = first packets, and the
// counters must equal the number of connections exactly.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readState } from '../src/lab/index.js';
import { serveInfo } from '../src/lab/supervisor.js';
import type { PolicyCounter } from '../src/flows/aggregate.js';
import type { StoredFlow, AlertRecord } from '../src/flows/store.js';
import { connect, scratchLab } from './helpers/lab.js';
import { netnsSkipReason, pidAlive } from './helpers/netns.js';
import { until } from './helpers/wait.js';

const WEIR = fileURLToPath(new URL('../bin/weir.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/visibility-lab/', import.meta.url));
const API_POLICY = 'NetworkPolicy back/api-from-web';
const ISOLATED = 'default deny (isolated)';
/** The denied-rate alert fires when the rogue namespace exceeds this many denied connections per minute. */
const THRESHOLD = 3;

function weir(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEIR, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, WEIR_DEBUG: '' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ok(args: readonly string[]): Promise<string> {
  const r = await weir(args);
  assert.equal(r.code, 0, `weir ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

interface Webhook {
  readonly url: string;
  readonly received: { alert: AlertRecord }[];
}

async function webhookReceiver(t: TestContext): Promise<Webhook> {
  const received: { alert: AlertRecord }[] = [];
  const server: Server = createHttpServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      received.push(JSON.parse(body) as { alert: AlertRecord });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, received };
}

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

describe('visibility against a lab (root)', () => {
  it('lab up + serve: attributed, deduplicated flows; exact policy counters; alert at N+1; metrics; engine rebuilt on apply', async (t) => {
    if (skip) return t.skip(skip);
    const { prefix, dir } = await scratchLab(t);
    const recorded: { servePid?: number } = {};
    t.after(async () => {
      // Runs after the scratch lab's teardown (after hooks run in the order they were added).
      if (recorded.servePid !== undefined) assert.equal(await pidAlive(recorded.servePid), false, 'weir serve is gone');
    });
    const hook = await webhookReceiver(t);
    const alertsFile = join(dir, 'alerts.yaml');
    await writeFile(
      alertsFile,
      `webhook: { url: "${hook.url}" }\nrules:\n  - { name: rogue-denied, kind: denied-rate, namespace: rogue, threshold: ${THRESHOLD}, window: 1m }\n`,
    );

    const up = await ok(['lab', 'up', `${FIXTURE}base`, '--dir', dir, '--prefix', prefix, '--serve-port', '0', '--alerts', alertsFile]);
    const url = /dashboard: (http:\/\/127\.0\.0\.1:\d+)\//.exec(up)?.[1];
    assert.ok(url, `lab up prints the dashboard URL:\n${up}`);
    const info = await serveInfo(dir);
    assert.ok(info.running && info.url === url, `serve is recorded and running: ${JSON.stringify(info)}`);
    recorded.servePid = info.pid;
    assert.match(await ok(['lab', 'status', '--dir', dir]), new RegExp(`visibility: ${url}/ \\(weir serve pid ${info.pid}\\)`));
    const state = await readState(dir);
    assert.ok(state, 'lab state');
    const node = (key: string): string | undefined => state.pods.find((p) => p.key === key)?.node;
    assert.deepEqual([node('front/web'), node('back/api'), node('rogue/scanner')], ['node-0', 'node-1', 'node-0'], 'fixture placement');

    // ---- allowed: 4 × web → api (node-0 → node-1, seen by both conntracks), 2 × api → web, 2 × scanner → web.
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) assert.equal(await connect(state, 'front/web', 'back/api', 8080), true, 'web reaches api');
    for (let i = 0; i < 2; i++) assert.equal(await connect(state, 'back/api', 'front/web', 80), true, 'api reaches web');
    for (let i = 0; i < 2; i++) assert.equal(await connect(state, 'rogue/scanner', 'front/web', 80), true, 'scanner reaches web');
    const policies = async (): Promise<Map<string, PolicyCounter>> =>
      new Map((await get<{ policies: PolicyCounter[] }>(`${url}/api/policies`)).policies.map((p) => [p.policy, p]));
    const policiesText = async (): Promise<string> => JSON.stringify([...(await policies()).values()]);
    await until('4 allowed hits of api-from-web', async () => ((await policies()).get(API_POLICY)?.forwarded === 4 ? true : undefined), 10_000, policiesText);
    await until('4 default-allow flows', async () => ((await policies()).get('default')?.forwarded === 4 ? true : undefined), 10_000, policiesText);

    const flows = async (q: string): Promise<StoredFlow[]> => (await get<{ flows: StoredFlow[] }>(`${url}/api/flows?${q}`)).flows.filter((f) => f.event !== 'end');
    const webToApi = await flows('from_pod=front/web&to_pod=back/api');
    assert.equal(webToApi.length, 4, 'one record per connection, not one per node');
    for (const f of webToApi) {
      assert.equal(f.verdict, 'FORWARDED', 'verdict');
      assert.equal(f.node, 'node-0', 'kept on the source pod node');
      assert.deepEqual(
        { ns: f.src.namespace, pod: f.src.pod, wl: f.src.workload, id: f.src.identity },
        { ns: 'front', pod: 'web', wl: 'front/web[Pod]', id: 'front:app=web' },
        'source endpoint',
      );
      assert.deepEqual({ ns: f.dst.namespace, pod: f.dst.pod, wl: f.dst.workload, id: f.dst.identity }, { ns: 'back', pod: 'api', wl: 'back/api[Pod]', id: 'back:app=api' }, 'destination endpoint');
      assert.deepEqual([f.policy, f.rule, f.tier, f.direction, f.dstPort, f.protocol], [API_POLICY, 'ingress[0]', 'NetworkPolicy', 'ingress', 8080, 'TCP'], 'attributed by the engine');
    }
    // ---- bytes: conntrack accounting is on in the nodes, so the end of a connection carries its
    // counters. Closed TCP connections linger in TIME_WAIT for two minutes; deleting their
    // entries ends them now (a DESTROY event with the final counters), as the kernel would later.
    const ipOf = (key: string): string => state.pods.find((p) => p.key === key)?.ip ?? '';
    const node0 = state.nodes.find((n) => n.name === 'node-0')?.netns ?? '';
    await new Promise<void>((resolve, reject) =>
      execFile('ip', ['netns', 'exec', node0, 'conntrack', '-D', '-p', 'tcp', '-s', ipOf('front/web'), '-d', ipOf('back/api'), '--dport', '8080'], (e) => (e ? reject(e) : resolve())),
    );
    const ends = await until('4 connection ends of web -> api with their counters', async () => {
      const all = (await get<{ flows: StoredFlow[] }>(`${url}/api/flows?from_pod=front/web&to_pod=back/api`)).flows.filter((f) => f.event === 'end');
      return all.length === 4 ? all : undefined;
    });
    for (const f of ends) assert.ok(f.bytes > 0 && f.packets > 0, `bytes and packets counted (nf_conntrack_acct): ${f.bytes} B, ${f.packets} packets`);
    const apiToWeb = await flows('from_pod=back/api&to_pod=front/web');
    assert.deepEqual(apiToWeb.map((f) => [f.node, f.verdict, f.policy, f.rule]), [1, 2].map(() => ['node-1', 'FORWARDED', 'default', 'default-allow']), 'api -> web: on node-1 only, default allow');

    // ---- denied: scanner → api, dropped at api's ingress on node-1. Exactly THRESHOLD first: no alert.
    for (let i = 1; i <= THRESHOLD; i++) {
      assert.equal(await connect(state, 'rogue/scanner', 'back/api', 8080), false, 'scanner is denied');
      await until(`${i} denied`, async () => ((await policies()).get(API_POLICY)?.dropped === i ? true : undefined));
    }
    // One more poll period and a batch: still nothing fired at sum == threshold.
    await new Promise((r) => setTimeout(r, 1200));
    const quiet = await get<{ alerts: AlertRecord[] }>(`${url}/api/alerts`);
    assert.deepEqual(quiet.alerts, [], `no alert at ${THRESHOLD} denied connections`);
    assert.equal(hook.received.length, 0, 'webhook not called yet');
    assert.equal(await connect(state, 'rogue/scanner', 'back/api', 8080), false, 'scanner is denied');
    const fired = await until('the alert', async () => {
      const a = (await get<{ alerts: AlertRecord[] }>(`${url}/api/alerts`)).alerts;
      return a.length > 0 ? a : undefined;
    });
    assert.deepEqual(fired.map((a) => [a.rule, a.state, a.value, a.threshold]), [['rogue-denied', 'firing', THRESHOLD + 1, THRESHOLD]], 'fires at the N+1-th');
    await until('the webhook', async () => (hook.received.length > 0 ? true : undefined));
    assert.equal(hook.received[0]?.alert.rule, 'rogue-denied', 'webhook payload names the rule');

    const counter = (await policies()).get(API_POLICY);
    assert.deepEqual(
      { forwarded: counter?.forwarded, dropped: counter?.dropped, rules: counter?.rules },
      { forwarded: 4, dropped: THRESHOLD + 1, rules: { 'ingress[0]': 4, [ISOLATED]: THRESHOLD + 1 } },
      'per-policy counters equal the connections made',
    );
    const denied = await flows('from_pod=rogue/scanner&to_pod=back/api');
    assert.equal(denied.length, THRESHOLD + 1, 'one DROPPED record per denied connection, and no FORWARDED half from node-0');
    for (const f of denied) assert.deepEqual([f.verdict, f.node, f.policy, f.rule, f.direction, f.src.workload, f.dst.workload], ['DROPPED', 'node-1', API_POLICY, ISOLATED, 'ingress', 'rogue/scanner[Pod]', 'back/api[Pod]'], 'dropped where it was dropped');

    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, new RegExp(`weir_drops_total\\{src_namespace="rogue",dst_namespace="back",policy="${API_POLICY}"\\} ${THRESHOLD + 1}\\n`), 'drops metric');
    const attribution = await get<{ mismatches: number; otherNode: number; droppedElsewhere: number }>(`${url}/api/attribution`);
    assert.equal(attribution.mismatches, 0, 'kernel and engine agree on every record');
    assert.ok(attribution.otherNode >= 4, `node-1's view of web -> api discarded (${attribution.otherNode})`);
    assert.ok(attribution.droppedElsewhere >= THRESHOLD + 1, `node-0's half of the denied connects discarded (${attribution.droppedElsewhere})`);

    // ---- a live policy change: the engine is rebuilt, and the scanner's allowed flows name the new policy.
    await ok(['lab', 'apply', `${FIXTURE}web-from-scanner.yaml`, '--dir', dir]);
    await until('the rebuilt engine', async () => ((await get<{ generation: string }>(`${url}/api/attribution`)).generation === '2' ? true : undefined));
    assert.equal(await connect(state, 'rogue/scanner', 'front/web', 80), true, 'still allowed');
    const renamed = await until('the attributed flow', async () => {
      const f = (await flows('from_pod=rogue/scanner&to_pod=front/web&policy=NetworkPolicy front/web-from-scanner'));
      return f.length > 0 ? f : undefined;
    });
    assert.deepEqual(renamed.map((f) => [f.verdict, f.rule, f.node]), [['FORWARDED', 'ingress[0]', 'node-0']], 'attributed to the new policy');

    // ---- weir flows against the lab's server.
    const table = await ok(['flows', '--server', url, '--verdict', 'DROPPED', '--from-namespace', 'rogue']);
    assert.equal(table.trim().split('\n').length, THRESHOLD + 2, `header + ${THRESHOLD + 1} rows:\n${table}`);

    const down = await ok(['lab', 'down', '--dir', dir]);
    assert.match(down, /and the visibility server stopped/);
    assert.equal(recorded.servePid !== undefined && (await pidAlive(recorded.servePid)), false, 'serve stopped by lab down');
    assert.ok(Date.now() - t0 < 60_000, 'bounded');
  });
});
