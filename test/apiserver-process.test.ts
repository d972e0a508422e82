// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// The test API server as its own process with a state file (how the lab will run it): the
// Kubernetes source keeps watching while the process is stopped and started again on the same
// port, loses nothing, and sees what kubectl changes afterwards.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { KubeSource } from '../src/source/kube/index.js';
import { APISERVER_LISTENING, type StoreState } from '../src/testing/apiserver/index.js';
import { EventLedger, namespace, pod, selfSignedCert, waitFor } from './helpers/kube.js';

const run = promisify(execFile);
const KUBECTL = '/usr/bin/kubectl';

function startProcess(dir: string, port: number): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'src/testing/apiserver/main.ts', '--state', join(dir, 'state.json'), '--port', String(port), '--kubeconfig', join(dir, 'kubeconfig'), '--token', 'tok', '--tls-key', join(dir, 'tls.key'), '--tls-cert', join(dir, 'tls.crt')],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  return new Promise((ok, fail) => {
    let out = '';
    child.stdout?.on('data', (c: Buffer) => {
      out += c.toString('utf8');
      const m = new RegExp(`${APISERVER_LISTENING}(\\S+)`).exec(out);
      if (m) ok({ child, url: m[1] });
    });
    child.on('exit', (code) => fail(new Error(`the API server process exited with ${code}`)));
  });
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((ok) => {
    child.once('exit', () => ok());
    child.kill('SIGTERM');
  });
}

describe('test API server process with a state file', { skip: !existsSync(KUBECTL) && 'kubectl not installed' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'weir-apiserver-'));
  const children: ChildProcess[] = [];
  after(async () => {
    for (const c of children) await stopProcess(c);
    rmSync(dir, { recursive: true, force: true });
  });

  it('is stopped and started again under a watching source, which converges without a re-list storm', async () => {
    selfSignedCert(dir);
    const state: StoreState = {
      resourceVersion: 10,
      objects: [
        { ...namespace('shop'), metadata: { name: 'shop', labels: { 'kubernetes.io/metadata.name': 'shop' }, resourceVersion: '2', uid: 'u1' } },
        { ...pod('shop', 'a', { ip: '10.0.0.1' }), metadata: { name: 'a', namespace: 'shop', labels: {}, resourceVersion: '5', uid: 'u2' } },
      ],
    };
    writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
    const first = await startProcess(dir, 0);
    children.push(first.child);
    const port = Number(new URL(first.url).port);
    const kubeconfig = join(dir, 'kubeconfig');

    const ledger = new EventLedger();
    const errors: string[] = [];
    const source = new KubeSource({ auth: { kind: 'kubeconfig', path: kubeconfig }, timing: { backoffBaseMs: 100, backoffMaxMs: 500 } });
    try {
      await source.start({ onEvents: (b) => ledger.apply(b), onError: (e) => errors.push(e.message) });
      assert.deepEqual(ledger.keys(), ['Namespace shop', 'Pod shop/a']);
      const kubectl = (...args: string[]) => run(KUBECTL, ['--kubeconfig', kubeconfig, ...args], { timeout: 30_000 });
      writeFileSync(join(dir, 'b.yaml'), 'apiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: shop, labels: {app: b}}\nspec: {containers: [{name: c, image: img}]}\nstatus: {podIP: 10.0.0.2}\n');
      await kubectl('apply', '--validate=false', '-f', join(dir, 'b.yaml'));
      await waitFor('pod b', () => ledger.state.has('Pod shop/b'));

      // Stop (the state is written on the way out) and start again on the same port.
      await stopProcess(first.child);
      await waitFor('the source to notice', () => errors.length > 0);
      const second = await startProcess(dir, port);
      children.push(second.child);
      await kubectl('label', 'pod', '-n', 'shop', 'b', 'after=restart');
      await kubectl('delete', 'pod', '-n', 'shop', 'a');
      await waitFor('the changes made after the restart', () => !ledger.state.has('Pod shop/a') && JSON.stringify(ledger.state.get('Pod shop/b')).includes('"after":"restart"'), 10_000);
      assert.deepEqual(ledger.problems, []);
      const pods = source.stats().find((s) => s.kind === 'Pod');
      // The restarted server kept its resourceVersions: the watch resumed, no re-list was needed.
      assert.equal(pods?.relistsGone, 0);
      assert.ok((pods?.failures ?? 0) <= 10, `failures ${pods?.failures}`);
    } finally {
      await source.stop();
    }
  });
});
