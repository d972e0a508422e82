// suite: integration (no root; the CLI as processes)
// `weir agent` flow-shipping flags on a Kubernetes node: checked before anything starts, with a
// sentence naming the flag (no root, no API server needed: every case fails before connecting).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { weir } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'weir-agent-flows-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const kubeconfig = join(dir, 'kubeconfig');
writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');

test('a Kubernetes node agent takes --server; it needs the token, and the query flags exclude each other', async () => {
  const noToken = await weir(['agent', '--node', 'n1', '--kubeconfig', kubeconfig, '--server', 'http://127.0.0.1:1']);
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /--server needs --token-file/);
  assert.doesNotMatch(noToken.stderr, /lab agents only/);
  const token = join(dir, 'token');
  writeFileSync(token, 'secret-token-0123456789\n');
  const both = await weir(['agent', '--node', 'n1', '--kubeconfig', kubeconfig, '--server', 'http://127.0.0.1:1', '--token-file', token, '--query-port', '1', '--query-address', '127.0.0.1:2']);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /--query-port and --query-address/);
  const bad = await weir(['agent', '--node', 'n1', '--kubeconfig', kubeconfig, '--server', 'http://127.0.0.1:1', '--token-file', token, '--query-address', 'x:y']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--query-address x:y: expected PORT or HOST:PORT/);
  // The settings' server counts as --server: without a token, the same sentence.
  const settings = join(dir, 'settings.yaml');
  writeFileSync(settings, 'server: http://weir-server.weir.svc:7680\n');
  const fromSettings = await weir(['agent', '--node', 'n1', '--kubeconfig', kubeconfig, '--config', settings]);
  assert.equal(fromSettings.code, 2);
  assert.match(fromSettings.stderr, /--server needs --token-file/);
});
