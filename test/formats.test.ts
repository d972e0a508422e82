// The connectivity list and its renderings, at library level: exact lines on small clusters
// built in code (including the cases the loader cannot produce, such as replicas of one
// workload with different addresses).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectivityList, FocusNotFoundError, lineText, type ConnLine } from '../src/analyze/connlist.js';
import { renderConnList, renderCsv, renderDot, renderJson, renderMd, renderTxt } from '../src/analyze/formats.js';
import type { AdminNetworkPolicy, Cluster, NetworkPolicy, Pod } from '../src/model/cluster.js';
import { analyze, PolicyEngine } from '../src/policy/index.js';
import { e2eModel, modelNamespace } from './helpers/model.js';

function pod(namespace: string, name: string, workload: string, labels: Record<string, string>, ip?: string): Pod {
  return {
    namespace,
    name,
    labels,
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    hostNetwork: false,
    workload,
    ...(ip !== undefined ? { ip } : {}),
  };
}

function cluster(pods: Pod[], networkPolicies: NetworkPolicy[] = [], adminNetworkPolicies: AdminNetworkPolicy[] = []): Cluster {
  const namespaces = [...new Set(pods.map((p) => p.namespace))].map((n) => modelNamespace(n));
  return { namespaces, nodes: [], workloads: [], pods, services: [], networkPolicies, adminNetworkPolicies };
}

function np(namespace: string, name: string, spec: Partial<NetworkPolicy>): NetworkPolicy {
  return { namespace, name, podSelector: {}, policyTypes: ['Ingress'], ingress: [], egress: [], mode: 'enforce', ...spec };
}

function lines(c: Cluster, opts: { focusWorkload?: string; explain?: boolean } = {}): ConnLine[] {
  const engine = new PolicyEngine(c);
  return connectivityList(engine, analyze(engine), opts);
}

function texts(c: Cluster, opts: { focusWorkload?: string } = {}): string[] {
  return lines(c, opts).map(lineText);
}

const WEB = 'app/web[Deployment]';
const DB = 'app/db[Deployment]';

/** web (2 replicas with addresses), db; db accepts only 10.0.0.1 (web-0) on 8080. */
function splitCluster(dbFrom: string): Cluster {
  return cluster(
    [
      pod('app', 'web-0', WEB, { app: 'web' }, '10.0.0.1'),
      pod('app', 'web-1', WEB, { app: 'web' }, '10.0.0.2'),
      pod('app', 'db-0', DB, { app: 'db' }, '10.0.1.1'),
    ],
    [
      np('app', 'db-ingress', {
        podSelector: { matchLabels: { app: 'db' } },
        ingress: [{ peers: [{ kind: 'ipBlock', ipBlock: { cidr: dbFrom, except: [] } }], ports: [{ protocol: 'TCP', port: 8080 }] }],
      }),
    ],
  );
}

describe('connectivity list', () => {
  it('lists workloads, merges external atoms into ranges and drops self-loops', () => {
    assert.deepEqual(texts(splitCluster('10.0.0.0/24')), [
      '0.0.0.0-255.255.255.255[External] => app/web[Deployment] : All Connections',
      '10.0.0.0-10.0.0.255[External] => app/db[Deployment] : TCP 8080',
      'app/db[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections',
      'app/db[Deployment] => app/web[Deployment] : All Connections',
      'app/web[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections',
      'app/web[Deployment] => app/db[Deployment] : TCP 8080',
    ]);
  });

  it('lists the pods of a workload one by one when their connectivity differs', () => {
    const out = texts(splitCluster('10.0.0.1/32'));
    assert.ok(out.includes('app/web-0[Pod] => app/db[Deployment] : TCP 8080'), out.join('\n'));
    assert.ok(!out.some((l) => l.startsWith('app/web-1[Pod] => app/db')), out.join('\n'));
    assert.ok(!out.some((l) => l.includes(WEB)), 'the workload itself is not listed once split');
    // Replicas split apart are distinct endpoints: traffic between them is listed.
    assert.ok(out.includes('app/web-0[Pod] => app/web-1[Pod] : All Connections'));
  });

  it('keeps a workload whole when its pods are in different classes with the same connectivity', () => {
    const c = splitCluster('10.0.0.0/24');
    // An unrelated ipBlock splits 10.0.0.2 into its own atom: web-0 and web-1 now differ in
    // class but not in connectivity.
    const other = np('other', 'unrelated', {
      podSelector: { matchLabels: { app: 'none' } },
      ingress: [{ peers: [{ kind: 'ipBlock', ipBlock: { cidr: '10.0.0.2/32', except: [] } }], ports: [] }],
    });
    const engine = new PolicyEngine({ ...c, networkPolicies: [...c.networkPolicies, other] });
    const result = analyze(engine);
    const webClasses = result.classes.filter((k) => k.pods.some((p) => p.workload === WEB));
    assert.equal(webClasses.length, 2, 'precondition: the replicas are in two classes');
    const out = connectivityList(engine, result).map(lineText);
    assert.ok(out.includes('app/web[Deployment] => app/db[Deployment] : TCP 8080'), out.join('\n'));
    assert.ok(!out.some((l) => l.includes('[Pod]')));
  });

  it('keeps only lines touching the focus workload, by ns/name or name', () => {
    const c = e2eModel();
    const byName = texts(c, { focusWorkload: 'x/a' });
    assert.ok(byName.length > 0);
    assert.ok(byName.every((l) => l.includes('x/a[Pod]')), byName.join('\n'));
    const bare = texts(c, { focusWorkload: 'a' });
    assert.ok(bare.some((l) => l.includes('y/a[Pod]')) && bare.some((l) => l.includes('x/a[Pod]')));
    assert.throws(() => texts(c, { focusWorkload: 'x/nope' }), FocusNotFoundError);
  });

  it('names the allowing rules per line, or the default', () => {
    const c = splitCluster('10.0.0.0/24');
    const l = lines(c, { explain: true }).find((x) => lineText(x) === 'app/web[Deployment] => app/db[Deployment] : TCP 8080');
    assert.ok(l?.explanation);
    assert.deepEqual(l.explanation.egress.map((r) => r.text), ['default allow (not isolated)']);
    assert.deepEqual(l.explanation.ingress.map((r) => r.text), ['NetworkPolicy app/db-ingress ingress[0]']);
    assert.equal(l.explanation.ingress[0].policy, 'NetworkPolicy app/db-ingress');
    assert.equal(l.explanation.ingress[0].rule, 'ingress[0]');
  });

  it('explains admin tiers with priority, and parts of a line decided by different rules', () => {
    const c = cluster(
      [pod('app', 'a', 'app/a[Pod]', { app: 'a' }), pod('app', 'b', 'app/b[Pod]', { app: 'b' })],
      [
        np('app', 'b-web', {
          podSelector: { matchLabels: { app: 'b' } },
          ingress: [{ peers: [], ports: [{ protocol: 'TCP', port: 80 }] }],
        }),
      ],
      [
        {
          name: 'allow-metrics',
          priority: 7,
          subject: { namespaces: {} },
          ingress: [{ name: 'metrics', action: 'Allow', peers: [{ kind: 'namespaces', namespaces: {} }], ports: [{ kind: 'portNumber', protocol: 'TCP', port: 9100 }] }],
          egress: [],
          mode: 'enforce',
        },
      ],
    );
    const l = lines(c, { explain: true }).find((x) => x.src.name === 'app/a[Pod]' && x.dst.name === 'app/b[Pod]');
    assert.ok(l?.explanation);
    assert.equal(l.conn, 'TCP 80,9100');
    assert.deepEqual(l.explanation.ingress.map((r) => r.text), [
      'AdminNetworkPolicy allow-metrics (priority 7) ingress[0] "metrics" (TCP 9100)',
      'NetworkPolicy app/b-web ingress[0] (TCP 80)',
    ]);
  });
});

describe('output formats', () => {
  const sample = (): ConnLine[] => lines(splitCluster('10.0.0.0/24')).filter((l) => l.src.name === 'app/web[Deployment]');

  it('txt: one line per connection', () => {
    assert.equal(
      renderTxt(sample()),
      'app/web[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections\napp/web[Deployment] => app/db[Deployment] : TCP 8080\n',
    );
    assert.equal(renderTxt([]), '');
  });

  it('json: netpol-analyzer objects', () => {
    assert.deepEqual(JSON.parse(renderJson(sample())), [
      { src: 'app/web[Deployment]', dst: '0.0.0.0-255.255.255.255[External]', conn: 'All Connections' },
      { src: 'app/web[Deployment]', dst: 'app/db[Deployment]', conn: 'TCP 8080' },
    ]);
    assert.equal(renderJson([]), '[]\n');
  });

  it('csv: header and quoted connections', () => {
    const c = cluster(
      [pod('app', 'a', 'app/a[Pod]', { app: 'a' }), pod('app', 'b', 'app/b[Pod]', { app: 'b' })],
      [
        np('app', 'b', {
          podSelector: { matchLabels: { app: 'b' } },
          ingress: [{ peers: [], ports: [{ protocol: 'TCP', port: 80 }, { protocol: 'UDP', port: 53 }] }],
        }),
      ],
    );
    const out = renderCsv(lines(c, { focusWorkload: 'app/b' }).filter((l) => l.src.name === 'app/a[Pod]'));
    assert.equal(out, 'src,dst,conn\napp/a[Pod],app/b[Pod],"TCP 80,UDP 53"\n');
  });

  it('md: a table', () => {
    assert.equal(
      renderMd(sample()),
      [
        '| src | dst | conn |',
        '|-----|-----|------|',
        '| app/web[Deployment] | 0.0.0.0-255.255.255.255[External] | All Connections |',
        '| app/web[Deployment] | app/db[Deployment] | TCP 8080 |',
        '',
      ].join('\n'),
    );
  });

  it('dot: namespaces as clusters, externals red, labelled edges', () => {
    assert.equal(
      renderDot(sample()),
      [
        'digraph {',
        '\tsubgraph "cluster_app" {',
        '\t\tcolor="black"',
        '\t\tfontcolor="black"',
        '\t\t"app/db[Deployment]" [label="db[Deployment]" color="blue" fontcolor="blue"]',
        '\t\t"app/web[Deployment]" [label="web[Deployment]" color="blue" fontcolor="blue"]',
        '\t\tlabel="app"',
        '\t}',
        '\t"0.0.0.0-255.255.255.255[External]" [label="0.0.0.0-255.255.255.255[External]" color="red2" fontcolor="red2"]',
        '\t"app/web[Deployment]" -> "0.0.0.0-255.255.255.255[External]" [label="All Connections" color="gold2" fontcolor="darkgreen" weight=1]',
        '\t"app/web[Deployment]" -> "app/db[Deployment]" [label="TCP 8080" color="gold2" fontcolor="darkgreen" weight=1]',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('explanations appear in txt, json, csv and md', () => {
    const l = lines(splitCluster('10.0.0.0/24'), { explain: true }).filter((x) => lineText(x) === 'app/web[Deployment] => app/db[Deployment] : TCP 8080');
    assert.equal(
      renderConnList(l, 'txt'),
      'app/web[Deployment] => app/db[Deployment] : TCP 8080\n    egress:  default allow (not isolated)\n    ingress: NetworkPolicy app/db-ingress ingress[0]\n',
    );
    const j = JSON.parse(renderConnList(l, 'json')) as { explanation: { ingress: { policy: string }[] } }[];
    assert.equal(j[0].explanation.ingress[0].policy, 'NetworkPolicy app/db-ingress');
    assert.match(renderConnList(l, 'csv'), /^src,dst,conn,egress,ingress\n/);
    assert.match(renderConnList(l, 'md'), /\| NetworkPolicy app\/db-ingress ingress\[0\] \|/);
  });
});
