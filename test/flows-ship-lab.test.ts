// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// Cluster mode in the lab (root only; skipped otherwise): one `weir serve --cluster` process,
// `weir lab up --server URL --token-file F` whose agents follow their node's kernel and ship
// to it. Real connections through the kernel must arrive with exact per-policy counts, the
// raw records must come back through the server's fan-out to the agents, `weir status` must
// list both agents, and a killed agent must show up as a partial answer, never a silent one.
// Everything (namespaces, agents, the server process, the lab dir) is removed in t.after.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { PolicyCounter } from '../src/flows/aggregate.js';
import type { StoredFlow } from '../src/flows/store.js';
import { readState } from '../src/lab/index.js';
import { agentPidFile } from '../src/lab/supervisor.js';
import { weir } from './helpers/cli.js';
import { connect, scratchLab } from './helpers/lab.js';
import { netnsSkipReason } from './helpers/netns.js';
import { until } from './helpers/wait.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/visibility-lab/', import.meta.url));
const API_POLICY = 'NetworkPolicy back/api-from-web';
const TOKEN = 'lab-ship-token-0123456789abcdef';

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

describe('flow shipping in the lab (root)', () => {
  it('agents ship exact counts to weir serve --cluster; queries fan out; a dead agent is marked', async (t) => {
    if (skip) return t.skip(skip);
    const { prefix, dir } = await scratchLab(t);
    const tokenFile = `${dir}-token`;
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    const server = spawn(process.execPath, ['bin/weir.js', 'serve', '--cluster', '--store', `${dir}-cluster.db`, '--port', '0', '--token-file', tokenFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(async () => {
      if (server.exitCode === null) {
        server.kill('SIGTERM');
        await once(server, 'close');
      }
      for (const f of [tokenFile, `${dir}-cluster.db`, `${dir}-cluster.db-wal`, `${dir}-cluster.db-shm`]) await rm(f, { force: true });
    });
    let out = '';
    server.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const url = await until('the server', async () => /listening on (\S+)/.exec(out)?.[1]);
    const auth = { authorization: `Bearer ${TOKEN}` };
    const get = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${url}${path}`, { headers: auth });
      assert.equal(res.status, 200, `GET ${path}`);
      return (await res.json()) as T;
    };

    const up = await weir(['lab', 'up', `${FIXTURE}base`, '--dir', dir, '--prefix', prefix, '--server', url, '--token-file', tokenFile]);
    assert.equal(up.code, 0, up.stderr);
    assert.match(up.stdout, /agents ship flows to/);
    const state = await readState(dir);
    assert.ok(state);

    for (let i = 0; i < 4; i++) assert.equal(await connect(state, 'front/web', 'back/api', 8080), true, 'web reaches api');
    for (let i = 0; i < 2; i++) assert.equal(await connect(state, 'rogue/scanner', 'back/api', 8080), false, 'scanner is denied');
    const policies = async (): Promise<Map<string, PolicyCounter>> => new Map((await get<{ policies: PolicyCounter[] }>('/api/policies')).policies.map((p) => [p.policy, p]));
    await until(
      'exact counts on the server',
      async () => {
        const c = (await policies()).get(API_POLICY);
        return c?.forwarded === 4 && c.dropped === 2 ? true : undefined;
      },
      20_000,
      async () => JSON.stringify([...(await policies()).values()]),
    );

    // Raw records come from the agents (fan-out), one per connection.
    const q = await get<{ flows: StoredFlow[]; partial: boolean; sources: { node: string; ok: boolean }[] }>('/api/flows?from_pod=front/web&to_pod=back/api&limit=100');
    assert.equal(q.partial, false);
    assert.deepEqual(q.sources.map((s) => s.node).sort(), ['node-0', 'node-1']);
    assert.equal(q.flows.filter((f) => f.event !== 'end').length, 4, 'one raw record per connection');

    const status = await weir(['status', '--server', url, '--token-file', tokenFile]);
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.match(status.stdout, /^node-0\s+\S+\s+ok\s/m);
    assert.match(status.stdout, /^node-1\s+\S+\s+ok\s/m);

    // node-1's agent dies: its records are not there, and the answer says so.
    const pid = Number((await readFile(agentPidFile(dir, 'node-1'), 'utf8')).trim());
    process.kill(pid, 'SIGKILL');
    const partial = await until('a partial answer', async () => {
      const r = await get<{ partial: boolean; sources: { node: string; ok: boolean }[] }>('/api/flows?limit=10');
      return r.partial ? r : undefined;
    });
    assert.deepEqual(partial.sources.filter((s) => !s.ok).map((s) => s.node), ['node-1']);
    const cli = await weir(['flows', '--server', url, '--token-file', tokenFile, '--limit', '5']);
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, /partial result: the agent of node node-1/);
  });
});
