// suite: integration (no root; the weir CLI as a process)
// `--services` on the command line: refused where it means nothing (a lab agent, a files lab),
// the kube-proxy-replacement overlay's placeholder API server address named, and the help
// saying it is off by default beside kube-proxy.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { weir } from './helpers/cli.js';

describe('the command line', () => {
  test('--services is refused where it means nothing, and the overlay placeholder is named', async () => {
    const placeholder = await weir(['agent', '--node', 'n1', '--in-cluster', '--services', '--no-health'], { KUBERNETES_SERVICE_HOST: 'set-me.invalid', KUBERNETES_SERVICE_PORT: '6443' });
    assert.equal(placeholder.code, 2, placeholder.stderr);
    assert.match(placeholder.stderr, /KUBERNETES_SERVICE_HOST is the placeholder set-me\.invalid: set the API server's address in the ConfigMap weir-apiserver/);
    const lab = await weir(['agent', '--lab-dir', '/nonexistent', '--node', 'n1', '--services']);
    assert.equal(lab.code, 2);
    assert.match(lab.stderr, /--services is for a Kubernetes node/);
    const up = await weir(['lab', 'up', '--services', '--dir', '/nonexistent']);
    assert.equal(up.code, 2);
    assert.match(up.stderr, /--services is for --source kube/);
    const help = await weir(['agent', '--help']);
    assert.match(help.stdout.replace(/\s+/g, ' '), /--services .*weir replaces kube-proxy\. Off by default: beside kube-proxy, weir must not also DNAT/);
  });
});
