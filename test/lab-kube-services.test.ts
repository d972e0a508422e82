// suite: lab (root: network namespaces, nftables, agent and API server processes)
// `weir agent --services` end to end: `weir lab up --source kube --services` serves the lab
// through its API server (which plays the allocators and the EndpointSlice controller) and each
// node's agent is a Kubernetes node agent that programs the Service NAT from the Services and
// EndpointSlices it watches, with its balancing loop. Real packets: connections to the ClusterIP
// from a pod reach every endpoint; a NetworkPolicy deny on one backend holds through the
// ClusterIP; an endpoint pod deleted through the API leaves the rotation; `lab probe --compare`
// agrees on every pod and Service cell (ClusterIP from pods, NodePort from the external host).
// Second case, cluster mode: the agents' balancing loops share health and drains through a
// `weir serve --cluster` (`--server --token-file`); a drain set on the server moves every new
// connection off that location.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stopLabApiServer } from '../src/lab/kube.js';
import { teardownLab } from './helpers/lab.js';
import { execResult, weirExpect } from './helpers/cli.js';
import { netnsSkipReason, tempLabDir, testPrefix } from './helpers/netns.js';
import { until } from './helpers/wait.js';

const WEIR = fileURLToPath(new URL('../bin/weir.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/lab-kube-services/', import.meta.url));

const exec = execResult;
const weir = weirExpect;

/** `n` connections, `concurrency` at a time, to ip:port from inside the pod; replies counted by pod name. */
const CLIENT = `
const net = require('node:net');
const [ip, port, n, concurrency, timeoutMs] = process.argv.slice(1).map((x, i) => (i === 0 ? x : Number(x)));
const counts = {}; const errors = {}; let next = 0;
function one() {
  return new Promise((resolve) => {
    let data = ''; let done = false;
    const s = net.connect({ host: ip, port });
    const finish = (err) => { if (done) return; done = true; s.destroy();
      if (err) errors[err] = (errors[err] ?? 0) + 1;
      else { const id = data.trim(); counts[id] = (counts[id] ?? 0) + 1; }
      resolve(); };
    s.setTimeout(timeoutMs, () => finish('timeout'));
    s.setEncoding('utf8'); s.on('data', (d) => (data += d));
    s.on('error', (e) => finish(e.code)); s.on('end', () => finish(data ? undefined : 'empty'));
  });
}
async function worker() { while (next < n) { next++; await one(); } }
Promise.all(Array.from({ length: concurrency }, worker)).then(() => process.stdout.write(JSON.stringify({ counts, errors })));
`;

interface ClientResult {
  readonly counts: Record<string, number>;
  readonly errors: Record<string, number>;
}

interface ProbeJson {
  readonly cells: readonly { from: string; to: string; port: number; ok: boolean }[];
  readonly comparison?: { cells: number; disagreements: readonly unknown[] };
  readonly services?: {
    readonly cells: readonly { from: string; to: string; port: number; ok: boolean; reply?: string }[];
    readonly comparison?: { compared: number; disagreements: readonly unknown[] };
  };
}

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

describe('weir agent --services in a kube lab (root)', () => {
  it('the node agents program Service NAT from the API: spread, a deny through the ClusterIP, an endpoint deleted through the API, probe --compare', async (t: TestContext) => {
    if (skip) return t.skip(skip);
    const prefix = testPrefix();
    const dir = await tempLabDir();
    t.after(async () => {
      await stopLabApiServer(dir).catch(() => undefined);
      await teardownLab(prefix, dir);
    });
    const at = ['--dir', dir];
    const kubectl = async (...args: string[]): Promise<string> => {
      const r = await exec('kubectl', ['--kubeconfig', join(dir, 'kubeconfig'), ...args]);
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };

    await weir(['lab', 'up', FIXTURES + 'shop.yaml', ...at, '--prefix', prefix, '--nodes', '2', '--source', 'kube', '--services', '--no-serve', '--no-dns']);
    const log0 = await readFile(join(dir, 'logs', 'agent-node-0.log'), 'utf8');
    assert.match(log0, /Service NAT on \(--services\)/);
    assert.match(log0, /balancing loop on \(health and drains through /);

    // The lab played the API server's allocator and the EndpointSlice controller.
    const clusterIP = (await kubectl('get', 'service', '-n', 'shop', 'web', '-o', 'jsonpath={.spec.clusterIP}')).trim();
    assert.match(clusterIP, /^10\.(9[6-9]|10[0-9]|11[01])\.\d+\.\d+$/, 'a ClusterIP from the service CIDR');
    const slices = JSON.parse(await kubectl('get', 'endpointslices', '-n', 'shop', '-o', 'json')) as { items: { metadata: { labels: Record<string, string> }; endpoints: { addresses: string[]; targetRef?: { name: string } }[] }[] };
    assert.equal(slices.items.length, 1);
    assert.equal(slices.items[0]?.metadata.labels['endpointslice.kubernetes.io/managed-by'], 'endpointslice-controller.k8s.io');
    assert.deepEqual(slices.items[0]?.endpoints.map((e) => e.targetRef?.name).sort(), ['web-0', 'web-1', 'web-2']);

    const connect = async (n: number): Promise<ClientResult> => {
      const r = await weir(['lab', 'exec', ...at, 'shop/client', '--', process.execPath, '-e', CLIENT, clusterIP, '80', String(n), '8', '800']);
      return JSON.parse(r.stdout) as ClientResult;
    };
    const compare = async (what: string): Promise<ProbeJson> => {
      const r = await weir(['lab', 'probe', ...at, '--compare', '--output', 'json', '--port', '8080/TCP', '--port', '80/TCP']);
      const p = JSON.parse(r.stdout) as ProbeJson;
      assert.deepEqual(p.comparison?.disagreements, [], `${what}: 0 pod disagreements`);
      assert.ok(p.services, `${what}: Services probed`);
      assert.deepEqual(p.services.comparison?.disagreements, [], `${what}: 0 Service disagreements`);
      return p;
    };
    const svcCell = (p: ProbeJson, from: string) => p.services?.cells.find((c) => c.from === from && c.to === 'svc/shop/web');

    // 1. Connections to the ClusterIP from a pod reach every endpoint, all answered — once the
    // balancing loops have probed the three and found them healthy (an endpoint whose first
    // probes came before its server listened is out of the rotation until two good probes).
    const lbStatus = async (): Promise<string> => (await weir(['lb', 'status', 'shop/web', '--lab-dir', dir, '--json'])).stdout;
    await until('every endpoint of shop/web healthy in the balancing loops', async () => {
      const view = JSON.parse(await lbStatus()) as { services?: { nodes?: { endpoints?: { healthy: boolean }[] }[] }[] };
      const endpoints = (view.services ?? []).flatMap((v) => (v.nodes ?? []).flatMap((n) => n.endpoints ?? []));
      return endpoints.length >= 3 && endpoints.every((e) => e.healthy);
    }, 15_000, lbStatus, 250);
    let r = await connect(90);
    assert.deepEqual(r.errors, {}, JSON.stringify(r));
    assert.deepEqual(Object.keys(r.counts).sort(), ['shop/web-0', 'shop/web-1', 'shop/web-2'], `${JSON.stringify(r)}; balancing: ${await lbStatus()}`);
    let p = await compare('after up');
    assert.equal(svcCell(p, 'shop/client')?.ok, true);
    assert.ok(p.services?.cells.some((c) => c.from === 'external' && c.ok), `a NodePort answered the external host: ${JSON.stringify(p.services?.cells)}`);
    assert.ok((p.services?.comparison?.compared ?? 0) >= 3, JSON.stringify(p.services?.comparison));

    // The balancing loop of each kube agent reports the Service (lb-<node>.json in the lab dir).
    const status = JSON.parse((await weir(['lb', 'status', 'shop/web', '--lab-dir', dir, '--json'])).stdout) as { nodes?: unknown[] } & Record<string, unknown>;
    assert.match(JSON.stringify(status), /10\.244\.\d+\.\d+:8080/);

    // 2. A NetworkPolicy deny on one backend holds when it is reached through the ClusterIP.
    await weir(['lab', 'apply', FIXTURES + 'deny-web-2.yaml', ...at, '--timeout', '60']);
    r = await connect(90);
    assert.equal(r.counts['shop/web-2'], undefined, `web-2 never answers through the ClusterIP: ${JSON.stringify(r)}`);
    assert.ok((r.counts['shop/web-0'] ?? 0) > 0 && (r.counts['shop/web-1'] ?? 0) > 0, JSON.stringify(r));
    assert.ok((r.errors.timeout ?? 0) > 0, `connections the kernel sent to web-2 are dropped by its policy: ${JSON.stringify(r)}`);
    await compare('after the deny');
    await weir(['lab', 'delete', FIXTURES + 'deny-web-2.yaml', ...at, '--timeout', '60']);

    // 3. An endpoint pod deleted through the API: its slice entry goes, and it leaves the rotation.
    await weir(['lab', 'delete', FIXTURES + 'web-2.yaml', ...at, '--timeout', '60']);
    const after = JSON.parse(await kubectl('get', 'endpointslices', '-n', 'shop', '-o', 'json')) as { items: { endpoints: { targetRef?: { name: string } }[] }[] };
    assert.deepEqual(after.items.flatMap((s) => s.endpoints.map((e) => e.targetRef?.name)).sort(), ['web-0', 'web-1']);
    // The attempts web-2's policy dropped above left unanswered conntrack entries (SYN_SENT, 2
    // minutes) that a SYN from a reused source port would follow to the gone pod: the agent of
    // the client's node deleted them with the endpoint.
    const logs = (await Promise.all(['node-0', 'node-1'].map((n) => readFile(join(dir, 'logs', `agent-${n}.log`), 'utf8')))).join('\n');
    assert.match(logs, /\d+ conntrack entr(y|ies) to removed endpoints deleted/);
    r = await connect(60);
    assert.deepEqual(r.errors, {}, `no connection goes to the deleted endpoint: ${JSON.stringify(r)}`);
    assert.deepEqual(Object.keys(r.counts).sort(), ['shop/web-0', 'shop/web-1'], JSON.stringify(r));
    p = await compare('after the endpoint was deleted');
    assert.equal(svcCell(p, 'shop/client')?.ok, true);

    await weir(['lab', 'down', ...at]);
  });

  it('with --server: the balancing loops report to the server, and a drain set there moves new connections', async (t: TestContext) => {
    if (skip) return t.skip(skip);
    const prefix = testPrefix();
    const dir = await tempLabDir();
    const token = `${dir}-token`;
    const db = `${dir}-cluster.db`;
    await writeFile(token, 'kube-services-token-0123456789abcdef\n', { mode: 0o600 });
    const server = spawn(process.execPath, [WEIR, 'serve', '--cluster', '--store', db, '--port', '0', '--token-file', token], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(async () => {
      await stopLabApiServer(dir).catch(() => undefined);
      await teardownLab(prefix, dir);
      if (server.exitCode === null) {
        server.kill('SIGTERM');
        await once(server, 'close');
      }
      for (const f of [token, db, `${db}-wal`, `${db}-shm`]) await rm(f, { force: true });
    });
    let out = '';
    server.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const url = await until('the server', async () => /listening on (\S+)/.exec(out)?.[1]);
    const at = ['--dir', dir];
    const remote = ['--server', url, '--token-file', token];
    await weir(['lab', 'up', FIXTURES + 'located.yaml', ...at, '--prefix', prefix, '--source', 'kube', '--services', '--no-dns', ...remote]);
    assert.match(await readFile(join(dir, 'logs', 'agent-node-0.log'), 'utf8'), /balancing loop on \(health and drains through http:\/\/127\.0\.0\.1:\d+/);
    const clusterIP = (await exec('kubectl', ['--kubeconfig', join(dir, 'kubeconfig'), 'get', 'service', '-n', 'shop', 'web', '-o', 'jsonpath={.spec.clusterIP}'])).stdout.trim();
    const connect = async (n: number): Promise<ClientResult> => JSON.parse((await weir(['lab', 'exec', ...at, 'shop/client', '--', process.execPath, '-e', CLIENT, clusterIP, '80', String(n), '4', '800'])).stdout) as ClientResult;

    // Both nodes' loops report the Service to the server (weir lb status --server).
    interface View { service: string; nodes: { node: string; endpoints: { pod?: string; location?: string }[] }[] }
    const views = await until('both nodes on the server', async () => {
      const r = await exec(process.execPath, [WEIR, 'lb', 'status', 'shop/web', ...remote, '--json']);
      if (r.code !== 0) return undefined;
      const v = (JSON.parse(r.stdout) as { services: View[] }).services;
      const nodes = new Set(v.flatMap((x) => x.nodes.map((n) => n.node)));
      return nodes.has('node-0') && nodes.has('node-1') ? v : undefined;
    });
    assert.deepEqual(views[0]?.nodes[0]?.endpoints.map((e) => `${e.pod ?? '?'} ${e.location ?? '?'}`).sort(), ['shop/web-0 eu', 'shop/web-1 us']);
    let r = await connect(40);
    assert.deepEqual(Object.keys(r.counts).sort(), ['shop/web-0', 'shop/web-1'], JSON.stringify(r));

    // A drain of `us` on the server: new connections leave web-1 within a few ticks.
    await weir(['lb', 'drain', 'us', ...remote]);
    await until('the drain in the kernel', async () => {
      const one = await connect(20);
      return one.counts['shop/web-1'] === undefined ? one : undefined;
    }, 15_000);
    r = await connect(40);
    assert.deepEqual(r.errors, {}, JSON.stringify(r));
    assert.deepEqual(Object.keys(r.counts), ['shop/web-0'], `drained: only eu answers: ${JSON.stringify(r)}`);
    await weir(['lb', 'undrain', 'us', ...remote]);
    await until('the undrain in the kernel', async () => ((await connect(20)).counts['shop/web-1'] ? true : undefined), 15_000);
  });
});
