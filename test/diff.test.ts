// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// `weir diff` over pairs of folders the test writes itself: a port changed, a policy added, a
// workload added, ipBlock ranges changed. Every line is checked, in np-guard's text format.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { diffConnectivity, diffLineText } from '../src/analyze/diff.js';
import { loadManifestText } from '../src/load/index.js';
import { PolicyEngine } from '../src/policy/index.js';
import { weir } from './helpers/cli.js';

const deployment = (name: string, port?: number, kind = 'Deployment', apiVersion = 'apps/v1') => `apiVersion: ${apiVersion}
kind: ${kind}
metadata: { name: ${name}, namespace: shop }
spec:
  template:
    metadata: { labels: { app: ${name} } }
    spec: { containers: [{ name: c, image: i${port ? `, ports: [{ containerPort: ${port} }]` : ''} }] }
`;
const BASE = ['apiVersion: v1\nkind: Namespace\nmetadata: { name: shop }\n', deployment('web', 8080), deployment('db', 5432)].join('---\n');
const dbPolicy = (ports: string) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: db, namespace: shop }
spec:
  podSelector: { matchLabels: { app: db } }
  ingress:
    - from: [{ podSelector: { matchLabels: { app: web } } }]
      ports: ${ports}
`;
const webEgress = (except: string) => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: web-out, namespace: shop }
spec:
  podSelector: { matchLabels: { app: web } }
  policyTypes: [Egress]
  egress:
    - to: [{ ipBlock: { cidr: 10.0.0.0/8, except: [${except}] } }]
      ports: [{ port: 443 }]
`;

/** Pairs of versions: each a list of files (name → text). */
const VERSIONS: Record<string, Record<string, string>> = {
  'port-old': { 'base.yaml': BASE, 'db.yaml': dbPolicy('[{ port: 5432 }]') },
  'port-new': { 'base.yaml': BASE, 'db.yaml': dbPolicy('[{ port: 5432 }, { port: 53, protocol: UDP }]') },
  'nopolicy': { 'base.yaml': BASE },
  'policy': { 'base.yaml': BASE, 'db.yaml': dbPolicy('[{ port: 5432 }]') },
  'workload': { 'base.yaml': `${BASE}---\n${deployment('cache', undefined, 'StatefulSet')}` },
  'range-old': { 'base.yaml': BASE, 'egress.yaml': webEgress('10.0.0.0/16') },
  'range-new': { 'base.yaml': BASE, 'egress.yaml': webEgress('10.0.0.0/12') },
};

let dir = '';
const at = (v: string) => join(dir, v);

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'weir-diff-'));
  for (const [v, files] of Object.entries(VERSIONS)) {
    mkdirSync(at(v));
    for (const [f, text] of Object.entries(files)) writeFileSync(join(at(v), f), text);
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

async function diffTxt(a: string, b: string): Promise<string[]> {
  const r = await weir(['diff', at(a), '--', at(b)]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.split('\n');
}

describe('weir diff: line by line', () => {
  it('a port changed', async () => {
    assert.deepEqual(await diffTxt('port-old', 'port-new'), [
      'Connectivity diff:',
      'diff-type: changed, source: shop/web[Deployment], destination: shop/db[Deployment], old: TCP 5432, new: TCP 5432,UDP 53',
      '',
    ]);
  });

  it('a policy added', async () => {
    assert.deepEqual(await diffTxt('nopolicy', 'policy'), [
      'Connectivity diff:',
      'diff-type: changed, source: shop/web[Deployment], destination: shop/db[Deployment], old: All Connections, new: TCP 5432',
      'diff-type: removed, source: 0.0.0.0-255.255.255.255[External], destination: shop/db[Deployment], old: All Connections, new: No Connections',
      '',
    ]);
  });

  it('a workload added, with workloads-diff-info', async () => {
    const info = 'workloads-diff-info: workload shop/cache[StatefulSet] added';
    assert.deepEqual(await diffTxt('nopolicy', 'workload'), [
      'Connectivity diff:',
      `diff-type: added, source: 0.0.0.0-255.255.255.255[External], destination: shop/cache[StatefulSet], old: No Connections, new: All Connections, ${info}`,
      `diff-type: added, source: shop/cache[StatefulSet], destination: 0.0.0.0-255.255.255.255[External], old: No Connections, new: All Connections, ${info}`,
      `diff-type: added, source: shop/cache[StatefulSet], destination: shop/db[Deployment], old: No Connections, new: All Connections, ${info}`,
      `diff-type: added, source: shop/cache[StatefulSet], destination: shop/web[Deployment], old: No Connections, new: All Connections, ${info}`,
      `diff-type: added, source: shop/db[Deployment], destination: shop/cache[StatefulSet], old: No Connections, new: All Connections, ${info}`,
      `diff-type: added, source: shop/web[Deployment], destination: shop/cache[StatefulSet], old: No Connections, new: All Connections, ${info}`,
      '',
    ]);
    // The other way round: removed, with the workload named as removed.
    const back = await diffTxt('workload', 'nopolicy');
    assert.equal(back.length, 8);
    assert.ok(back.slice(1, 7).every((l) => l.startsWith('diff-type: removed, ') && l.endsWith('workloads-diff-info: workload shop/cache[StatefulSet] removed')));
  });

  it('ipBlock ranges changed: exactly the sub-range that changed', async () => {
    assert.deepEqual(await diffTxt('range-old', 'range-new'), [
      'Connectivity diff:',
      'diff-type: removed, source: shop/web[Deployment], destination: 10.1.0.0-10.15.255.255[External], old: TCP 443, new: No Connections',
      '',
    ]);
    assert.deepEqual(await diffTxt('range-new', 'range-old'), [
      'Connectivity diff:',
      'diff-type: added, source: shop/web[Deployment], destination: 10.1.0.0-10.15.255.255[External], old: No Connections, new: TCP 443',
      '',
    ]);
  });

  it('no difference: the header only', async () => {
    assert.deepEqual(await diffTxt('policy', 'policy'), ['Connectivity diff:', '']);
  });
});

describe('weir diff: formats, --fail-on and arguments', () => {
  it('md, csv, json and dot', async () => {
    const md = await weir(['diff', '--old', at('port-old'), '--new', at('port-new'), '-f', 'md']);
    assert.deepEqual(md.stdout.split('\n'), [
      '| diff-type | source | destination | old | new | workloads-diff-info |',
      '|-----------|--------|-------------|------|------|---------------------|',
      '| changed | shop/web[Deployment] | shop/db[Deployment] | TCP 5432 | TCP 5432,UDP 53 |  |',
      '',
    ]);
    const csv = await weir(['diff', '--old', at('port-old'), '--new', at('port-new'), '-f', 'csv']);
    assert.deepEqual(csv.stdout.split('\n'), [
      'diff-type,source,destination,old,new,workloads-diff-info',
      'changed,shop/web[Deployment],shop/db[Deployment],TCP 5432,"TCP 5432,UDP 53",',
      '',
    ]);
    const json = await weir(['diff', '-f', 'json', at('nopolicy'), '--', at('workload')]);
    const j = JSON.parse(json.stdout) as { diff: { diffType: string }[]; workloadsAdded: string[]; workloadsRemoved: string[] };
    assert.equal(j.diff.length, 6);
    assert.ok(j.diff.every((d) => d.diffType === 'added'));
    assert.deepEqual([j.workloadsAdded, j.workloadsRemoved], [['shop/cache[StatefulSet]'], []]);
    const dot = (await weir(['diff', '-f', 'dot', at('nopolicy'), '--', at('policy')])).stdout;
    assert.match(dot, /^digraph \{$/m);
    assert.match(dot, /"0\.0\.0\.0-255\.255\.255\.255\[External\]" -> "shop\/db\[Deployment\]" \[label="All Connections" color="red2"/);
    assert.match(dot, /"shop\/web\[Deployment\]" -> "shop\/db\[Deployment\]" \[label="TCP 5432 \(old: All Connections\)" color="magenta"/);
    // Unchanged connections are drawn grey.
    assert.match(dot, /"shop\/db\[Deployment\]" -> "shop\/web\[Deployment\]" \[label="All Connections" color="grey"/);
    const added = (await weir(['diff', '-f', 'dot', at('nopolicy'), '--', at('workload')])).stdout;
    assert.match(added, /"shop\/cache\[StatefulSet\]" \[label="shop\/cache\[StatefulSet\]" color="#008000"/);
    assert.match(added, /-> "shop\/cache\[StatefulSet\]" \[label="All Connections" color="#008000"/);
  });

  // Options go before `--`: everything after it is the new version's paths.
  it('--fail-on gates CI: 1 only when a difference of that type exists', async () => {
    const opens = await weir(['diff', '--fail-on', 'added', at('policy'), '--', at('nopolicy')]);
    assert.equal(opens.code, 1);
    assert.match(opens.stderr, /--fail-on: 1 added/);
    assert.equal((await weir(['diff', '--fail-on', 'added', at('nopolicy'), '--', at('policy')])).code, 0);
    assert.equal((await weir(['diff', '--fail-on', 'added,removed', at('nopolicy'), '--', at('policy')])).code, 1);
    assert.equal((await weir(['diff', '--fail-on', 'changed', at('port-old'), '--', at('port-new')])).code, 1);
  });

  it('arguments: two versions are required', async () => {
    const r = await weir(['diff', at('policy')]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /expected two versions: weir diff OLD… -- NEW…/);
    assert.equal((await weir(['diff', '--old', at('policy')])).code, 2);
    const late = await weir(['diff', at('policy'), '--', at('policy'), '-f', 'json']);
    assert.equal(late.code, 2);
    assert.match(late.stderr, /"-f" after --: options go before --/);
    assert.equal((await weir(['diff', '--fail-on', 'opened', at('policy'), '--', at('policy')])).code, 2);
  });
});

describe('diffConnectivity as a library', () => {
  it('compares two engines', () => {
    const engine = (files: Record<string, string>) => new PolicyEngine(loadManifestText(Object.values(files).join('---\n'), 'x.yaml').cluster);
    const d = diffConnectivity(engine(VERSIONS['port-old']), engine(VERSIONS['port-new']));
    assert.deepEqual(d.lines.map(diffLineText), [
      'diff-type: changed, source: shop/web[Deployment], destination: shop/db[Deployment], old: TCP 5432, new: TCP 5432,UDP 53',
    ]);
  });
});
