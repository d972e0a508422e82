// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// Flows from Kubernetes node agents (root only; skipped otherwise): `weir lab up --source kube
// --server URL --token-file F` starts agents that watch the lab's API server and ship their
// node's flows to one `weir serve --cluster`. Real connections through the kernel must arrive
// with their groups and the deciding policy (exact counts), the raw records must come back
// through the server's fan-out, and `weir status` must list both agents with their sync.
// Second case: a lab agent's records through a Service carry the Service's name.
// Everything (namespaces, agents, the API server, the server process, the lab dir) is removed
// in t.after.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { PolicyCounter } from '../src/flows/aggregate.js';
import type { StoredFlow } from '../src/flows/store.js';
import { readState } from '../src/lab/index.js';
import { stopLabApiServer } from '../src/lab/kube.js';
import { weir } from './helpers/cli.js';
import { connect, teardownLab } from './helpers/lab.js';
import { netnsSkipReason, tempLabDir, testPrefix } from './helpers/netns.js';
import { until } from './helpers/wait.js';

const BASE = fileURLToPath(new URL('./fixtures/visibility-lab/base/', import.meta.url));
const SERVICE = fileURLToPath(new URL('./fixtures/flows-ship-kube/service.yaml', import.meta.url));
const API_POLICY = 'NetworkPolicy back/api-from-web';
const TOKEN = 'kube-ship-token-0123456789abcdef';

interface Cluster {
  readonly prefix: string;
  readonly dir: string;
  readonly url: string;
  readonly tokenFile: string;
  get<T>(path: string): Promise<T>;
}

/** A scratch lab dir and prefix, and a `weir serve --cluster` with a token; all removed after the test. */
async function clusterServer(t: TestContext): Promise<Cluster> {
  const prefix = testPrefix();
  const dir = await tempLabDir();
  const tokenFile = `${dir}-token`;
  const db = `${dir}-cluster.db`;
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const server: ChildProcessWithoutNullStreams = spawn(process.execPath, ['bin/weir.js', 'serve', '--cluster', '--store', db, '--port', '0', '--token-file', tokenFile], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(async () => {
    await stopLabApiServer(dir).catch(() => undefined);
    await teardownLab(prefix, dir);
    if (server.exitCode === null) {
      server.kill('SIGTERM');
      await once(server, 'close');
    }
    for (const f of [tokenFile, db, `${db}-wal`, `${db}-shm`]) await rm(f, { force: true });
  });
  let out = '';
  server.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const url = await until('the server', async () => /listening on (\S+)/.exec(out)?.[1]);
  const get = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(res.status, 200, `GET ${path}`);
    return (await res.json()) as T;
  };
  return { prefix, dir, url, tokenFile, get };
}

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

describe('flows from Kubernetes node agents (root)', () => {
  it('lab up --source kube --server: flows with groups and the deciding policy, fan-out, weir status', async (t) => {
    if (skip) return t.skip(skip);
    const c = await clusterServer(t);
    const up = await weir(['lab', 'up', BASE, '--dir', c.dir, '--prefix', c.prefix, '--source', 'kube', '--server', c.url, '--token-file', c.tokenFile]);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    assert.match(up.stdout, /agents ship flows to/);
    assert.match(up.stdout, /kubernetes API: /);
    const state = await readState(c.dir);
    assert.ok(state);

    for (let i = 0; i < 3; i++) assert.equal(await connect(state, 'front/web', 'back/api', 8080), true, 'web reaches api');
    for (let i = 0; i < 2; i++) assert.equal(await connect(state, 'rogue/scanner', 'back/api', 8080), false, 'scanner is denied');
    const policies = async (): Promise<Map<string, PolicyCounter>> => new Map((await c.get<{ policies: PolicyCounter[] }>('/api/policies')).policies.map((p) => [p.policy, p]));
    await until(
      'exact per-policy counts on the server',
      async () => {
        const p = (await policies()).get(API_POLICY);
        return p?.forwarded === 3 && p.dropped === 2 ? true : undefined;
      },
      30_000,
      async () => JSON.stringify([...(await policies()).values()]),
    );

    // Groups: the edges name the workloads on both sides and the deciding policy.
    const edges = await c.get<{ edges: { src: string; dst: string; flows: number; forwarded: number; dropped: number }[] }>('/api/edges?group=workload&window=5m');
    const web = edges.edges.find((e) => e.src === 'front/web[Pod]' && e.dst === 'back/api[Pod]');
    assert.equal(web?.forwarded, 3, JSON.stringify(edges.edges));
    const scanner = edges.edges.find((e) => e.src === 'rogue/scanner[Pod]' && e.dst === 'back/api[Pod]');
    assert.equal(scanner?.dropped, 2, JSON.stringify(edges.edges));

    // The raw records come from the agents (fan-out): pod names, the policy and rule.
    const q = await c.get<{ flows: StoredFlow[]; partial: boolean; sources: { node: string; ok: boolean }[] }>('/api/flows?from_pod=front/web&to_pod=back/api&limit=100');
    assert.equal(q.partial, false);
    assert.deepEqual(q.sources.map((s) => s.node).sort(), ['node-0', 'node-1']);
    const raw = q.flows.filter((f) => f.event !== 'end');
    assert.equal(raw.length, 3, 'one raw record per connection');
    assert.ok(raw.every((f) => f.policy === API_POLICY && f.verdict === 'FORWARDED' && f.src.pod === 'web' && f.dst.namespace === 'back' && f.node === 'node-0'), JSON.stringify(raw));

    const status = await weir(['status', '--server', c.url, '--token-file', c.tokenFile, '--json']);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    const agents = (JSON.parse(status.stdout) as { agents: { node: string; report: { sync: { lastSyncAt?: string; rules?: number; lastApplyOk?: boolean } } }[] }).agents;
    assert.deepEqual(agents.map((a) => a.node).sort(), ['node-0', 'node-1']);
    assert.ok(agents.every((a) => a.report.sync.lastApplyOk === true && (a.report.sync.rules ?? 0) > 0 && a.report.sync.lastSyncAt !== undefined), JSON.stringify(agents));
  });

  it('a lab agent names the Service a flow went through', async (t) => {
    if (skip) return t.skip(skip);
    const c = await clusterServer(t);
    const up = await weir(['lab', 'up', BASE, SERVICE, '--dir', c.dir, '--prefix', c.prefix, '--server', c.url, '--token-file', c.tokenFile, '--no-dns']);
    assert.equal(up.code, 0, up.stdout + up.stderr);
    const probed = await weir(['lab', 'probe', '--dir', c.dir, '--from', 'front/web', '--to', 'svc/back/api', '--output', 'json']);
    assert.equal(probed.code, 0, probed.stdout + probed.stderr);
    const cells = (JSON.parse(probed.stdout) as { services?: { cells: { ok: boolean }[] } }).services?.cells ?? [];
    assert.ok(cells.length > 0 && cells.every((x) => x.ok), probed.stdout);
    const through = await until('a record through the Service', async () => {
      const q = await c.get<{ flows: StoredFlow[] }>('/api/flows?from_pod=front/web&limit=100');
      const f = q.flows.find((x) => x.service !== undefined && x.event !== 'end');
      return f;
    });
    assert.equal(through.service?.name, 'back/api');
    assert.equal(through.dst.pod, 'api');
  });
});
