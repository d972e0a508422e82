// suite: lab (root: network namespaces, nftables, agent and API server processes)
// `weir lab up --source kube`: the lab served through the test API server (a process with its
// state in the lab dir), the agents watching it in policy-only mode; kubectl reaches it with the
// lab's kubeconfig; `lab apply`/`delete` go through the API; `lab probe --compare` shows 0
// disagreements after every change, also after the API server is killed and restarted
// mid-watch, after a forced 410 Gone and after watches that go silent.

import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { apiServerFault, readApiServerInfo, startLabApiServer, stopLabApiServer } from '../src/lab/kube.js';
import { teardownLab } from './helpers/lab.js';
import { execResult, weirExpect } from './helpers/cli.js';
import { netnsSkipReason, tempLabDir, testPrefix } from './helpers/netns.js';

const FIXTURES = fileURLToPath(new URL('./fixtures/lab-cli/', import.meta.url));

const exec = execResult;
const weir = weirExpect;

interface ProbeJson {
  readonly cells: readonly { from: string; to: string; port: number; ok: boolean }[];
  readonly comparison?: { cells: number; disagreements: readonly unknown[] };
}

let skip: string | undefined;
before(async () => {
  skip = await netnsSkipReason();
});

describe('weir lab up --source kube (root)', () => {
  it('agents watch the lab API server: kubectl sees it, apply/delete go through it, probe --compare agrees after restarts, 410 and silent watches', async (t: TestContext) => {
    if (skip) return t.skip(skip);
    const prefix = testPrefix();
    const dir = await tempLabDir();
    t.after(async () => {
      await stopLabApiServer(dir).catch(() => undefined);
      await teardownLab(prefix, dir);
    });
    const at = ['--dir', dir];
    const up = await weir(['lab', 'up', `${FIXTURES}base`, ...at, '--prefix', prefix, '--nodes', '2', '--source', 'kube', '--no-serve']);
    assert.match(up.stdout, /kubernetes API: http:\/\/127\.0\.0\.1:\d+/);
    assert.match(await readFile(join(dir, 'logs', 'agent-node-0.log'), 'utf8'), /watching kubernetes .*pod CIDRs 10\.244\.0\.0\/24/);

    // kubectl reaches the lab's API with the lab's kubeconfig and sees real pods.
    const kubectl = await exec('kubectl', ['--kubeconfig', join(dir, 'kubeconfig'), 'get', 'pods', '-A', '-o', 'json']);
    assert.equal(kubectl.code, 0, kubectl.stderr);
    const pods = (JSON.parse(kubectl.stdout) as { items: { metadata: { name: string; namespace: string; labels: Record<string, string> }; spec: { nodeName: string }; status: { podIP: string; phase: string } }[] }).items;
    assert.deepEqual(pods.map((p) => `${p.metadata.namespace}/${p.metadata.name}`).sort(), ['app/api', 'app/db', 'app/web', 'other/client']);
    assert.ok(pods.every((p) => /^10\.244\.\d\.\d+$/.test(p.status.podIP) && /^node-\d$/.test(p.spec.nodeName) && p.status.phase === 'Running'));

    const compare = async (what: string): Promise<ProbeJson> => {
      const r = await weir(['lab', 'probe', ...at, '--compare', '--output', 'json', '--port', '80/TCP', '--port', '8080/TCP', '--port', '5432/TCP']);
      const p = JSON.parse(r.stdout) as ProbeJson;
      assert.ok((p.comparison?.cells ?? 0) > 0, `${what}: cells compared`);
      assert.deepEqual(p.comparison?.disagreements, [], `${what}: 0 disagreements`);
      return p;
    };
    const reach = (p: ProbeJson, from: string, to: string, port: number) => p.cells.find((c) => c.from === from && c.to === to && c.port === port)?.ok;

    let p = await compare('after up');
    assert.equal(reach(p, 'app/web', 'app/api', 8080), true);
    assert.equal(reach(p, 'other/client', 'app/web', 80), true);

    // lab apply through the API: web isolated.
    await weir(['lab', 'apply', `${FIXTURES}deny-web.yaml`, ...at, '--timeout', '60']);
    const kubectlNp = await exec('kubectl', ['--kubeconfig', join(dir, 'kubeconfig'), 'get', 'networkpolicy', '-n', 'app', 'web-deny-all', '-o', 'name']);
    assert.equal(kubectlNp.stdout.trim(), 'networkpolicy.networking.k8s.io/web-deny-all');
    p = await compare('after apply');
    assert.equal(reach(p, 'other/client', 'app/web', 80), false);

    // The API server killed mid-watch and restarted (same port, state from its file); a change after.
    const info = await readApiServerInfo(dir);
    assert.ok(info);
    await new Promise((r) => setTimeout(r, 1500)); // its state file is written shortly after each change
    process.kill(info.pid, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 1000));
    await startLabApiServer(dir);
    await weir(['lab', 'delete', `${FIXTURES}deny-web.yaml`, ...at, '--timeout', '60']);
    p = await compare('after a killed and restarted API server');
    assert.equal(reach(p, 'other/client', 'app/web', 80), true);

    // A forced 410 Gone (history compacted): the agents re-list; a change after.
    await apiServerFault(dir, 'gone');
    await weir(['lab', 'apply', `${FIXTURES}deny-web.yaml`, ...at, '--timeout', '60']);
    p = await compare('after 410 Gone');
    assert.equal(reach(p, 'other/client', 'app/web', 80), false);

    // Watches that go silent: the agents' watchdog (5 s in the lab) re-lists; a change after.
    await apiServerFault(dir, 'silence');
    await weir(['lab', 'delete', `${FIXTURES}deny-web.yaml`, ...at, '--timeout', '60']);
    p = await compare('after silent watches');
    assert.equal(reach(p, 'other/client', 'app/web', 80), true);
    const log = await readFile(join(dir, 'logs', 'agent-node-0.log'), 'utf8');
    assert.match(log, /sent nothing for 5000 ms; re-listing/);

    await weir(['lab', 'down', ...at]);
    assert.equal(await readApiServerInfo(dir), undefined, 'the API server is stopped and forgotten');
  });
});
