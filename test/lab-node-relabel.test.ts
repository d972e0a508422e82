// suite: lab
// One source of cluster state, checked end to end (root only; skipped otherwise): a `lab apply`
// that relabels a Node changes an AdminNetworkPolicy `nodes` verdict in the agents (real
// packets), in `lab probe --compare` and in the visibility server's `/api/policies` alike; and
// a pod's identity has one id in `lab status`, in the agent's status file and in its flow
// records. Everything is removed in t.after (scratch lab: agents, server, namespaces, dir).

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { PolicyCounter } from '../src/flows/aggregate.js';
import type { StoredFlow } from '../src/flows/store.js';
import { readAgentStatus } from '../src/agent/status.js';
import { readState } from '../src/lab/index.js';
import { startServer, stopServer } from '../src/lab/processes.js';
import { serveInfo } from '../src/lab/supervisor.js';
import { scratchLab } from './helpers/lab.js';
import { netnsSkipReason } from './helpers/netns.js';
import { until } from './helpers/wait.js';

const WEIR = fileURLToPath(new URL('../bin/weir.js', import.meta.url));
const FIXTURE = fileURLToPath(new URL('./fixtures/node-relabel/', import.meta.url));
const ALLOW = 'AdminNetworkPolicy allow-zone-b';
const DENY = 'AdminNetworkPolicy deny-underlay';
const NODE_PORT = 8080;

function weir(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [WEIR, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, WEIR_DEBUG: '' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ok(args: readonly string[], code = 0): Promise<string> {
  const r = await weir(args);
  assert.equal(r.code, code, `weir ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

async function get<T>(url: string): Promise<T> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

interface ProbeJson {
  readonly cells: readonly { from: string; to: string; port: number; ok: boolean }[];
  readonly comparison: { cells: number; disagreements: readonly { expected: string; observed: string }[]; matrix: readonly { expected: string }[] };
}

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

describe('one source of cluster state (root)', () => {
  it('a Node relabel reaches the agents, probe --compare and /api/policies; one identity id in status, agent and flows', async (t) => {
    if (skip) return t.skip(skip);
    const { prefix, dir } = await scratchLab(t);
    const at = ['--dir', dir];
    await ok(['lab', 'up', `${FIXTURE}base`, ...at, '--prefix', prefix, '--serve-port', '0']);
    const url = (await serveInfo(dir)).url;
    assert.ok(url, 'the visibility server runs');
    const state = await readState(dir);
    const node1 = state?.nodes.find((n) => n.name === 'node-1');
    assert.ok(state && node1, 'lab state with node-1');
    // A server on node-1's own address: the lab runs none on nodes.
    const pid = await startServer({ netns: node1.netns, identity: 'node-1', ports: [{ port: NODE_PORT, protocol: 'TCP' }], logDir: join(dir, 'logs') });
    t.after(() => stopServer(pid).catch(() => undefined));

    const probeNode = async (): Promise<ProbeJson> => {
      const out = await ok(['lab', 'probe', ...at, '--compare', '--from', 'app/client', '--to', 'node-1', '--port', `${NODE_PORT}/TCP`, '--output', 'json']);
      return JSON.parse(out) as ProbeJson;
    };
    const policies = async (): Promise<Map<string, PolicyCounter>> => new Map((await get<{ policies: PolicyCounter[] }>(`${url}/api/policies`)).policies.map((p) => [p.policy, p]));
    const policiesText = async (): Promise<string> => JSON.stringify([...(await policies()).values()].filter((p) => p.policy.startsWith('Admin')));

    // ---- node-1 in zone a: the underlay is denied, and everyone agrees.
    let p = await probeNode();
    assert.deepEqual(
      p.cells.map((c) => [c.from, c.to, c.port, c.ok]),
      [['app/client', 'node-1', NODE_PORT, false]],
    );
    assert.equal(p.comparison.disagreements.length, 0, 'the engine denies it too');
    assert.equal(p.comparison.matrix[0]?.expected, 'Denied');
    await until('a drop counted for deny-underlay', async () => (((await policies()).get(DENY)?.dropped ?? 0) >= 1 ? true : undefined), 10_000, policiesText);

    // ---- relabel node-1 to zone b: the allow rule now matches it.
    const applied = await ok(['lab', 'apply', `${FIXTURE}relabel-node-1.yaml`, ...at]);
    assert.match(applied, /Node node-1 configured/);
    p = await probeNode();
    assert.equal(p.cells[0]?.ok, true, 'the agents enforce the new node labels (real packets)');
    assert.equal(p.comparison.disagreements.length, 0, `probe --compare agrees: ${JSON.stringify(p.comparison)}`);
    assert.equal(p.comparison.matrix[0]?.expected, 'Allowed', 'the engine of probe --compare sees the new node labels');
    // The server attributes the accepted connection with its own engine: the allow rule only if
    // the relabel reached it.
    await until('a forwarded connection counted for allow-zone-b', async () => (((await policies()).get(ALLOW)?.forwarded ?? 0) >= 1 ? true : undefined), 10_000, policiesText);
    const attribution = await get<{ mismatches: number }>(`${url}/api/attribution`);
    assert.equal(attribution.mismatches, 0, 'kernel and server engine agree');
    const status = JSON.parse(await ok(['lab', 'status', ...at, '--output', 'json'])) as { nodes: { name: string }[]; pods: { key: string; identity: { id: number } | null }[] };
    assert.deepEqual(
      status.nodes.map((n) => n.name),
      ['node-0', 'node-1'],
    );

    // ---- one identity id: lab status, the agent's status file, the flow records.
    const statusId = status.pods.find((x) => x.key === 'app/client')?.identity?.id;
    assert.ok(statusId !== undefined && statusId > 0, 'lab status shows the identity');
    const flows = await until(
      'a flow record from app/client',
      async () => {
        const f = await get<{ flows: StoredFlow[] }>(`${url}/api/flows?from_pod=app/client`);
        return f.flows.length > 0 ? f.flows : undefined;
      },
      10_000,
      async () => 'no flows',
    );
    assert.ok(
      flows.every((f) => f.src.identityId === statusId),
      `flow records carry identity ${statusId}: ${JSON.stringify(flows.map((f) => f.src))}`,
    );
    await assertAgentIdentity(dir, 'node-0', 'app', { app: 'client' }, statusId);
    await ok(['lab', 'down', ...at]);
  });
});

/** The agent of `node` reports the identity of its local pods (namespace + labels) under the same id. */
async function assertAgentIdentity(dir: string, node: string, namespace: string, labels: Record<string, string>, id: number): Promise<void> {
  const status = await readAgentStatus(dir, node);
  const found = status?.identities?.find((i) => i.namespace === namespace && JSON.stringify(i.labels) === JSON.stringify(labels));
  assert.equal(found?.id, id, `agent-${node}.json names the identity of ${namespace} ${JSON.stringify(labels)}: ${JSON.stringify(status?.identities)}`);
}
