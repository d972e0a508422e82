// suite: lab (needs root: real network namespaces and nftables; `npm run test:lab`)
// `weir lab …` end to end, through the real CLI (`node bin/weir.js`), with real namespaces,
// agents, nftables and packets (root only; skipped otherwise). Every test has its own
// prefix and directory and removes everything in t.after — agents by their recorded PIDs,
// namespaces by prefix — also when an assertion fails halfway.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { readState } from '../src/lab/index.js';
import { agentInfo } from '../src/lab/supervisor.js';
import { scratchLab } from './helpers/lab.js';
import { netnsSkipReason, netnsWithPrefix, pidAlive, removeDir, rootLinks, tempLabDir } from './helpers/netns.js';

const WEIR = fileURLToPath(new URL('../bin/weir.js', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/lab-cli/', import.meta.url));
const E2E_MODEL = fileURLToPath(new URL('../examples/e2e-model/', import.meta.url));

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function weir(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [WEIR, ...args],
      { encoding: 'utf8', timeout: 120_000, env: { ...process.env, WEIR_DEBUG: '', ...env }, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** Runs weir and fails the test with its output unless it exits with `code`. */
async function ok(args: readonly string[], code = 0): Promise<Result> {
  const r = await weir(args);
  assert.equal(r.code, code, `weir ${args.join(' ')} exited ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  return r;
}

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

interface Lab {
  readonly prefix: string;
  readonly dir: string;
  /** `--dir DIR` for every lab command. */
  readonly at: readonly string[];
}

async function scratch(t: TestContext): Promise<Lab> {
  const { prefix, dir } = await scratchLab(t);
  return { prefix, dir, at: ['--dir', dir] };
}

interface ProbeJson {
  readonly cells: readonly { from: string; to: string; port: number; protocol: string; ok: boolean }[];
  readonly comparison?: { cells: number; disagreements: readonly { from: string; to: string; expected: string; observed: string }[]; audit: readonly { from: string; to: string; audit?: string }[] };
}

async function probeJson(lab: Lab, extra: readonly string[], code = 0): Promise<ProbeJson> {
  const r = await ok(['lab', 'probe', ...lab.at, '--compare', '--output', 'json', ...extra], code);
  return JSON.parse(r.stdout) as ProbeJson;
}

function reachable(p: ProbeJson, from: string, to: string, port: number): boolean | undefined {
  return p.cells.find((c) => c.from === from && c.to === to && c.port === port)?.ok;
}

/** Every pid a lab recorded: servers and agents. */
async function labPids(dir: string): Promise<number[]> {
  const state = await readState(dir);
  const agents = state ? await agentInfo(dir, state.nodes) : [];
  return [
    ...(state ? [...state.pods.map((p) => p.serverPid), state.external.serverPid] : []),
    ...agents.map((a) => a.pid),
  ].filter((p): p is number => p !== undefined);
}

describe('weir lab (CLI, root)', () => {
  it('up → status → probe → apply deny (enforced at once) → relabel → delete → down, compared with the engine throughout', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const linksBefore = await rootLinks();

    const up = await ok(['lab', 'up', `${FIXTURES}base`, ...lab.at, '--prefix', lab.prefix, '--nodes', '2']);
    assert.match(up.stdout, /2 nodes, 4 pods/);
    assert.match(up.stdout, /agents: node-0 pid \d+.*node-1 pid \d+/);

    // status: nodes with running agents, pods with address, node and identity.
    const status = JSON.parse((await ok(['lab', 'status', ...lab.at, '--output', 'json'])).stdout) as {
      status: string;
      nodes: { name: string; agent: { running: boolean; status?: { lastApplyOk: boolean } } }[];
      pods: { key: string; ip: string; node: string; identity: { id: number; labels: Record<string, string> } }[];
      problems: string[];
    };
    assert.equal(status.status, 'up');
    assert.deepEqual(status.problems, []);
    assert.ok(status.nodes.every((n) => n.agent.running && n.agent.status?.lastApplyOk));
    assert.deepEqual(status.pods.map((p) => p.key).sort(), ['app/api', 'app/db', 'app/web', 'other/client']);
    for (const p of status.pods) {
      assert.match(p.ip, /^10\.244\.\d+\.\d+$/);
      assert.ok(p.identity.id > 0);
    }
    assert.deepEqual(status.pods.find((p) => p.key === 'app/api')?.identity.labels, { role: 'api' });
    const text = await ok(['lab', 'status', ...lab.at]);
    assert.match(text.stdout, /app\/api\s+10\.244\.\d+\.\d+\s+node-\d\s+#\d+\s+role=api/);

    // The policies are enforced from the start, and the kernel agrees with the engine.
    let p = await probeJson(lab, []);
    assert.equal(p.comparison?.disagreements.length, 0);
    assert.ok((p.comparison?.cells ?? 0) >= 12);
    assert.equal(reachable(p, 'app/web', 'app/api', 8080), true);
    assert.equal(reachable(p, 'other/client', 'app/api', 8080), false);
    assert.equal(reachable(p, 'app/api', 'app/db', 5432), true);
    assert.equal(reachable(p, 'app/web', 'app/db', 5432), false);
    assert.equal(reachable(p, 'other/client', 'app/web', 80), true);
    const summary = await ok(['lab', 'probe', ...lab.at, '--compare']);
    assert.match(summary.stdout, /^\d+ cells, 0 disagreements/m);

    // A deny policy: `lab apply` returns once every agent has applied it, so the very next
    // probe must see it — and the agents report the change applied well within a second.
    const applied = await ok(['lab', 'apply', `${FIXTURES}deny-web.yaml`, ...lab.at]);
    assert.match(applied.stdout, /NetworkPolicy app\/web-deny-all created/);
    const within = Number(/enforced on 2 nodes within (\d+) ms/.exec(applied.stdout)?.[1]);
    assert.ok(within < 1000, `enforced after ${within} ms`);
    p = await probeJson(lab, ['--port', '80/TCP', '--to', 'app/web']);
    assert.equal(p.comparison?.disagreements.length, 0);
    for (const from of ['app/api', 'app/db', 'other/client', 'external']) assert.equal(reachable(p, from, 'app/web', 80), false, `${from} -> app/web`);

    // Labels change live: the client becomes role=web and api admits it.
    const relabel = await ok(['lab', 'apply', `${FIXTURES}client-as-web.yaml`, ...lab.at]);
    assert.match(relabel.stdout, /Pod other\/client configured/);
    assert.match(relabel.stdout, /1 relabelled/);
    p = await probeJson(lab, ['--port', '8080/TCP', '--to', 'app/api']);
    assert.equal(p.comparison?.disagreements.length, 0);
    assert.equal(reachable(p, 'other/client', 'app/api', 8080), true);

    // Audit mode changes nothing in the kernel; compare marks the cells it would deny.
    await ok(['lab', 'apply', `${FIXTURES}audit-client.yaml`, ...lab.at]);
    p = await probeJson(lab, ['--port', '80/TCP', '--to', 'other/client']);
    assert.equal(p.comparison?.disagreements.length, 0);
    assert.equal(reachable(p, 'app/api', 'other/client', 80), true);
    assert.ok(p.comparison?.audit.some((c) => c.from === 'app/api' && c.to === 'other/client' && c.audit === 'Denied'));
    const auditText = await ok(['lab', 'probe', ...lab.at, '--compare', '--port', '80/TCP', '--to', 'other/client']);
    assert.match(auditText.stdout, /app\/api -> other\/client 80\/TCP: Allowed \(audit: would deny\)/);

    // Delete the deny policy: web is reachable again.
    const deleted = await ok(['lab', 'delete', `${FIXTURES}deny-web.yaml`, ...lab.at]);
    assert.match(deleted.stdout, /NetworkPolicy app\/web-deny-all deleted/);
    p = await probeJson(lab, ['--port', '80/TCP', '--to', 'app/web']);
    assert.equal(p.comparison?.disagreements.length, 0);
    assert.equal(reachable(p, 'app/api', 'app/web', 80), true);
    assert.equal(reachable(p, 'external', 'app/web', 80), true);

    // exec returns the command's exit code.
    assert.equal((await weir(['lab', 'exec', 'app/web', ...lab.at, '--', 'sh', '-c', 'exit 7'])).code, 7);

    // down stops agents and servers and removes every namespace; the root namespace is untouched.
    const pids = await labPids(lab.dir);
    assert.ok(pids.length >= 7, `servers and agents recorded: ${pids.join(' ')}`);
    await ok(['lab', 'down', ...lab.at]);
    assert.deepEqual(await netnsWithPrefix(lab.prefix), []);
    for (const pid of pids) assert.equal(await pidAlive(pid), false, `pid ${pid} stopped`);
    assert.deepEqual((await readdir(lab.dir)).filter((f) => f.endsWith('.pid')), []);
    assert.deepEqual(await rootLinks(), linksBefore);
    const after = await ok(['lab', 'status', ...lab.at], 1);
    assert.match(after.stdout, /is down/);
  });

  it('builds the upstream e2e model and probes TCP and UDP 80/81 with the kernel agreeing with the engine, before and after a policy', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    await ok(['lab', 'up', E2E_MODEL, ...lab.at, '--prefix', lab.prefix]);
    let p = await probeJson(lab, []);
    // 10 peers × 9 pod targets × 4 ports + 10 × external's 4 (80/443 TCP+UDP): loopback cells excluded.
    assert.equal(p.comparison?.disagreements.length, 0);
    assert.ok(p.cells.filter((c) => c.to !== 'external').every((c) => c.ok), 'no policy: every pod reaches every pod');

    // Upstream "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector".
    const policy = `${lab.dir}/x-from-y.yaml`;
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      policy,
      `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: allow-ns-y, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress: [{ from: [{ namespaceSelector: { matchLabels: { ns: y } } }] }]
`,
    );
    await ok(['lab', 'apply', policy, ...lab.at]);
    p = await probeJson(lab, []);
    assert.equal(p.comparison?.disagreements.length, 0);
    assert.equal(reachable(p, 'y/b', 'x/a', 81), true);
    assert.equal(reachable(p, 'z/b', 'x/a', 81), false);
    assert.equal(reachable(p, 'x/b', 'x/a', 80), false);
    assert.equal(p.cells.find((c) => c.from === 'x/b' && c.to === 'x/a' && c.port === 80 && c.protocol === 'UDP')?.ok, false);

    // An agent that died: status says so, and a change is refused before anything is written.
    const { readFile } = await import('node:fs/promises');
    process.kill(Number(await readFile(`${lab.dir}/agent-node-1.pid`, 'utf8')), 'SIGKILL');
    for (let i = 0; i < 100 && (await agentInfo(lab.dir, [{ name: 'node-1' }]))[0]?.running; i++) await new Promise((r) => setTimeout(r, 20));
    const st = await ok(['lab', 'status', ...lab.at], 1);
    assert.match(st.stdout, /agent of node-1 \(pid \d+\) is not running/);
    const refused = await ok(['lab', 'delete', policy, ...lab.at], 2);
    assert.match(refused.stderr, /no agent is running for node-1 .*nothing was changed/);
    assert.ok(existsSync(`${lab.dir}/desired/NetworkPolicy_x_allow-ns-y.yaml`));

    await ok(['lab', 'down', ...lab.at, '--purge']);
    assert.deepEqual(await netnsWithPrefix(lab.prefix), []);
    assert.equal(existsSync(`${lab.dir}/state.json`), false);
  });

  it('--compare exits 1 and explains every disagreement (a lab without agents enforces nothing)', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const up = await ok(['lab', 'up', `${FIXTURES}base`, ...lab.at, '--prefix', lab.prefix, '--no-agent']);
    assert.match(up.stdout, /NOT enforced/);
    const r = await ok(['lab', 'probe', ...lab.at, '--compare', '--port', '5432/TCP', '--to', 'app/db'], 1);
    assert.match(r.stdout, /DISAGREE app\/web -> app\/db 5432\/TCP: the engine says DENIED, the kernel: reachable/);
    assert.match(r.stdout, /app\/db is isolated for ingress by NetworkPolicy app\/[a-z-]+/);
    assert.match(r.stdout, /^\d+ cells, 3 disagreements/m);
    await ok(['lab', 'down', ...lab.at]);
  });

  it('invalid manifests: a clear error and nothing created', async (t) => {
    if (skip) return t.skip(skip);
    const lab = await scratch(t);
    const r = await weir(['lab', 'up', `${FIXTURES}base`, `${FIXTURES}invalid.yaml`, ...lab.at, '--prefix', lab.prefix]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid\.yaml:8: error: NetworkPolicy app\/broken: .*invalid CIDR/);
    assert.match(r.stderr, /weir: error: 1 error in the manifests: nothing was created/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.deepEqual(await netnsWithPrefix(lab.prefix), []);
    assert.equal(existsSync(`${lab.dir}/state.json`), false);
  });
});

describe('weir lab (CLI, no lab)', () => {
  it('status, probe and apply without a lab say so in one line', async (t) => {
    const dir = await tempLabDir();
    t.after(() => removeDir(dir));
    const status = await weir(['lab', 'status', '--dir', dir]);
    assert.equal(status.code, 1);
    assert.match(status.stdout, /^no lab in /);
    for (const args of [
      ['lab', 'probe', '--dir', dir],
      ['lab', 'apply', `${FIXTURES}deny-web.yaml`, '--dir', dir],
      ['lab', 'exec', 'app/web', '--dir', dir, '--', 'true'],
    ]) {
      const r = await weir(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /^weir: error: no lab is up in /);
    }
  });

  it('probe refuses SCTP and bad ports before touching anything', async (t) => {
    const dir = await tempLabDir();
    t.after(() => removeDir(dir));
    const sctp = await weir(['lab', 'probe', '--dir', dir, '--port', '80/SCTP']);
    assert.equal(sctp.code, 2);
    assert.match(sctp.stderr, /^weir: error: cannot probe 80\/SCTP: this kernel has no SCTP/);
    const bad = await weir(['lab', 'probe', '--dir', dir, '--port', 'http']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^weir: error: invalid port "http"/);
  });
});
