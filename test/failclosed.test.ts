// Never fail open: for each kind of invalid policy, a connection its author meant to deny is
// DENIED or UNKNOWN in explain(), in the connectivity list and in the JSON, never ALLOWED; and
// what the data plane enforces (evaluatePair, the kernel's semantics) never allows it either.
// What is certain of an invalid policy still holds.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { connectivityList, lineText, renderJson, renderTxt } from '../src/analyze/index.js';
import { loadManifestText } from '../src/load/index.js';
import { allows, analyze, evaluatePair, explain, formatExplanation, podEndpoint, PolicyEngine } from '../src/policy/index.js';
import { weir } from './helpers/cli.js';
import { fullScript, renderRuleset } from '../src/nft/index.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Namespace x with pods a, b, c (label app=<name>) serving TCP 80. */
const PODS = ['a', 'b', 'c']
  .map(
    (p) => `apiVersion: v1
kind: Pod
metadata: { name: ${p}, namespace: x, labels: { app: ${p} } }
spec: { containers: [{ name: c, image: i, ports: [{ containerPort: 80 }] }] }
`,
  )
  .join('---\n');
const NS = 'apiVersion: v1\nkind: Namespace\nmetadata: { name: x }\n';

function engineOf(policies: string): { engine: PolicyEngine; errors: number } {
  const r = loadManifestText(`${NS}---\n${PODS}---\n${policies}`, 'test.yaml');
  return { engine: new PolicyEngine(r.cluster), errors: r.diagnostics.filter((d) => d.severity === 'error').length };
}

/** The enforced (data-plane) verdict of x/src → x/dst on TCP port. */
function dataPlaneAllows(engine: PolicyEngine, src: string, dst: string, port = 80): boolean {
  const ep = (n: string) => podEndpoint(engine, engine.pods.get(`x/${n}`) as NonNullable<ReturnType<typeof engine.pods.get>>);
  return allows(evaluatePair(engine, ep(src), ep(dst)).allowed, 'TCP', port);
}

function listLine(engine: PolicyEngine, src: string, dst: string): string | undefined {
  const lines = connectivityList(engine, analyze(engine));
  return lines.map(lineText).find((l) => l.startsWith(`x/${src}[Pod] => x/${dst}[Pod] : `));
}

/** The checks every case shares: UNKNOWN with the reason, in explain, list and JSON; data plane denies. */
function assertUnknown(policies: string, src: string, dst: string, reason: string): PolicyEngine {
  const { engine, errors } = engineOf(policies);
  assert.ok(errors > 0, 'the invalid policy is still an input error');
  const e = explain(engine, `x/${src}`, `x/${dst}`, 'TCP', 80);
  assert.equal(e.verdict, 'Unknown', formatExplanation(e));
  assert.deepEqual(e.unknownBecause, [reason]);
  assert.match(formatExplanation(e), new RegExp(`^verdict: UNKNOWN \\(invalid: ${reason.replace(/[[\].]/g, '\\$&')}\\)$`, 'm'));
  const line = listLine(engine, src, dst);
  assert.ok(line !== undefined, 'the pair is listed');
  assert.ok(line.includes(`UNKNOWN`) && line.includes(`(invalid: ${reason})`), line);
  const json = JSON.parse(renderJson(connectivityList(engine, analyze(engine)))) as { src: string; dst: string; conn: string; unknown?: { reasons: string[] } }[];
  const j = json.find((x) => x.src === `x/${src}[Pod]` && x.dst === `x/${dst}[Pod]`);
  assert.ok(j?.unknown, 'JSON marks the unknown connections');
  assert.ok(!/TCP 80\b|All Connections/.test(j.conn), `JSON never lists it as allowed: ${j.conn}`);
  assert.equal(dataPlaneAllows(engine, src, dst), false, 'the data plane denies what is in doubt');
  return engine;
}

const np = (name: string, spec: string, meta = '') => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: ${name}, namespace: x${meta} }
spec:
${spec}`;
const anp = (name: string, spec: string) => `apiVersion: policy.networking.k8s.io/v1alpha1
kind: AdminNetworkPolicy
metadata: { name: ${name} }
spec:
${spec}`;
const banp = (spec: string) => `apiVersion: policy.networking.k8s.io/v1alpha1
kind: BaselineAdminNetworkPolicy
metadata: { name: default }
spec:
${spec}`;

describe('never fail open: NetworkPolicy', () => {
  it('the probe: an `operator: in` selector in a default-deny policy is UNKNOWN, not ALLOWED', () => {
    const engine = assertUnknown(
      np('deny', '  podSelector:\n    matchExpressions: [{ key: app, operator: in, values: [b] }]\n  policyTypes: [Ingress]\n'),
      'a',
      'b',
      'NetworkPolicy x/deny spec.podSelector.matchExpressions[0].operator',
    );
    // Egress is not in its policyTypes: nothing is in doubt there.
    assert.equal(explain(engine, 'x/a', 'x/b', 'TCP', 80).egress.verdict, 'Allowed');
  });

  it('an invalid rule allows nothing for sure; the isolation of a valid podSelector stays', () => {
    // endPort < port: the rule may allow a on some port, or nothing.
    const spec = '  podSelector: { matchLabels: { app: b } }\n  ingress:\n    - from: [{ podSelector: { matchLabels: { app: a } } }]\n      ports: [{ port: 90, endPort: 80 }]\n';
    const engine = assertUnknown(np('allow-a', spec), 'a', 'b', 'NetworkPolicy x/allow-a spec.ingress[0].ports[0].endPort');
    // c is not among the rule's peers: certainly denied, by the isolation that is certain.
    assert.equal(explain(engine, 'x/c', 'x/b', 'TCP', 80).verdict, 'Denied');
    assert.equal(listLine(engine, 'c', 'b'), undefined);
    // b isolates only itself: a → c is certainly allowed.
    assert.equal(explain(engine, 'x/a', 'x/c', 'TCP', 80).verdict, 'Allowed');
    assert.equal(listLine(engine, 'a', 'c'), 'x/a[Pod] => x/c[Pod] : All Connections');
  });

  it('an invalid peer (ipBlock with a bad CIDR) in an egress default deny', () => {
    const spec = '  podSelector: { matchLabels: { app: a } }\n  policyTypes: [Egress]\n  egress:\n    - to: [{ ipBlock: { cidr: 10.0.0.300/32 } }]\n';
    assertUnknown(np('egress', spec), 'a', 'b', 'NetworkPolicy x/egress spec.egress[0].to[0].ipBlock.cidr');
  });

  it('policyTypes in doubt: the policy may isolate either direction', () => {
    const spec = '  podSelector: { matchLabels: { app: b } }\n  policyTypes: [Ingres]\n';
    assertUnknown(np('types', spec), 'a', 'b', 'NetworkPolicy x/types spec.policyTypes[0]');
  });

  it('a misspelt field (`ingres:`) makes the rules it might hold UNKNOWN, the isolation stays', () => {
    const spec = '  podSelector: { matchLabels: { app: b } }\n  policyTypes: [Ingress]\n  ingres:\n    - from: [{ podSelector: {} }]\n';
    assertUnknown(np('typo', spec), 'a', 'b', 'NetworkPolicy x/typo spec.ingres');
  });

  it('an invalid weir.dev/mode: enforced or audited is in doubt', () => {
    const meta = ', annotations: { weir.dev/mode: dry-run }';
    assertUnknown(np('mode', '  podSelector: { matchLabels: { app: b } }\n  policyTypes: [Ingress]\n', meta), 'a', 'b', 'NetworkPolicy x/mode metadata.annotations["weir.dev/mode"]');
  });
});

describe('never fail open: AdminNetworkPolicy and BaselineAdminNetworkPolicy', () => {
  const subjectB = '  subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: b } } } }\n';
  const fromA = '[{ pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: a } } } }]';

  it('an ANP priority out of range: its Deny may stand anywhere', () => {
    assertUnknown(anp('deny-a', `  priority: 5000\n${subjectB}  ingress:\n    - { action: Deny, from: ${fromA} }\n`), 'a', 'b', 'AdminNetworkPolicy deny-a spec.priority');
  });

  it('an ANP Deny rule with an invalid peer selector', () => {
    const from = '[{ pods: { namespaceSelector: {}, podSelector: { matchExpressions: [{ key: app, operator: in, values: [a] }] } } }]';
    assertUnknown(
      anp('deny-a', `  priority: 10\n${subjectB}  ingress:\n    - { action: Deny, from: ${from} }\n`),
      'a',
      'b',
      'AdminNetworkPolicy deny-a spec.ingress[0].from[0].pods.podSelector.matchExpressions[0].operator',
    );
  });

  it('an ANP rule with an invalid action may allow, deny or pass', () => {
    assertUnknown(anp('drop-a', `  priority: 10\n${subjectB}  ingress:\n    - { action: Drop, from: ${fromA} }\n`), 'a', 'b', 'AdminNetworkPolicy drop-a spec.ingress[0].action');
  });

  it('an ANP Pass rule in doubt above a NetworkPolicy default deny', () => {
    const pass = anp('pass-a', `  priority: 10\n${subjectB}  ingress:\n    - { action: Pass, from: ${fromA}, ports: [{ portNumber: { port: 70000 } }] }\n`);
    const deny = np('deny', '  podSelector: { matchLabels: { app: b } }\n  policyTypes: [Ingress]\n');
    // Pass or not, the NetworkPolicy denies: certain.
    const { engine } = engineOf(`${pass}---\n${deny}`);
    assert.equal(explain(engine, 'x/a', 'x/b', 'TCP', 80).verdict, 'Denied');
    assert.equal(dataPlaneAllows(engine, 'a', 'b'), false);
  });

  it('an ANP subject in doubt: every pod might be subject to its Deny', () => {
    const spec = `  priority: 10\n  subject: { namespaces: {}, pods: { namespaceSelector: {}, podSelector: {} } }\n  ingress:\n    - { action: Deny, from: ${fromA} }\n`;
    const engine = assertUnknown(anp('both', spec), 'a', 'b', 'AdminNetworkPolicy both spec.subject');
    // Traffic from b is not in the Deny's peers: certain.
    assert.equal(explain(engine, 'x/b', 'x/c', 'TCP', 80).verdict, 'Allowed');
  });

  it('an ANP Allow in doubt above a certain Deny: UNKNOWN, and the data plane keeps the Deny', () => {
    const allow = anp('allow-a', `  priority: 10\n${subjectB}  ingress:\n    - { action: Allow, from: ${fromA}, ports: [{ portRange: { start: 90, end: 80 } }] }\n`);
    const deny = anp('deny-all', `  priority: 20\n${subjectB}  ingress:\n    - { action: Deny, from: [{ namespaces: {} }] }\n`);
    const { engine } = engineOf(`${allow}---\n${deny}`);
    const e = explain(engine, 'x/a', 'x/b', 'TCP', 80);
    assert.equal(e.verdict, 'Unknown');
    assert.deepEqual(e.unknownBecause, ['AdminNetworkPolicy allow-a spec.ingress[0].ports[0].portRange.end']);
    assert.equal(dataPlaneAllows(engine, 'a', 'b'), false);
  });

  it('a BANP Deny rule with an invalid selector', () => {
    const from = '[{ namespaces: { matchLabels: { "a b": x } } }]';
    assertUnknown(banp(`${subjectB}  ingress:\n    - { action: Deny, from: ${from} }\n`), 'a', 'b', 'BaselineAdminNetworkPolicy default spec.ingress[0].from[0].namespaces.matchLabels["a b"]');
  });
});

describe('never fail open: what the data plane renders', () => {
  it('the probe: the pods the invalid policy might select are isolated, nothing of it is accepted', () => {
    const { engine } = engineOf(np('deny', '  podSelector:\n    matchExpressions: [{ key: app, operator: in, values: [b] }]\n  policyTypes: [Ingress]\n'));
    const localPods = [...engine.pods.values()].map((p, i) => ({ key: `${p.namespace}/${p.name}`, ip: `10.9.0.${i + 1}` }));
    const script = fullScript(renderRuleset({ engine, localPods }));
    for (const pod of ['a', 'b', 'c']) {
      const chain = new RegExp(`chain in_x_${pod}_[0-9a-f]+ \\{\\n([^}]*)\\}`).exec(script);
      assert.ok(chain, `an ingress chain for x/${pod}:\n${script}`);
      assert.match(chain[1], /goto deny/);
      assert.doesNotMatch(chain[1], /accept/);
    }
  });

  it('an ANP rule with an invalid action is enforced as a Deny', () => {
    const subjectB = '  subject: { pods: { namespaceSelector: {}, podSelector: { matchLabels: { app: b } } } }\n';
    const { engine } = engineOf(anp('drop-a', `  priority: 10\n${subjectB}  ingress:\n    - { action: Drop, from: [{ namespaces: {} }] }\n`));
    const localPods = [...engine.pods.values()].map((p, i) => ({ key: `${p.namespace}/${p.name}`, ip: `10.9.0.${i + 1}` }));
    const script = fullScript(renderRuleset({ engine, localPods }));
    const chain = /chain adm_in_[0-9a-f]+ \{\n([^}]*)\}/.exec(script);
    assert.ok(chain, script);
    assert.match(chain[1], /^\s*ip saddr @g_\w+ meta mark set \d+ goto deny$/m);
    assert.doesNotMatch(chain[1], /accept/);
  });
});

describe('never fail open: the CLI', () => {
  it('explain --format json says Unknown and exits 2; analyze lists UNKNOWN and exits 2', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weir-failclosed-'));
    writeFileSync(join(dir, 'all.yaml'), `${NS}---\n${PODS}---\n${np('deny', '  podSelector:\n    matchExpressions: [{ key: app, operator: in, values: [b] }]\n')}`);
    const ex = await weir(['explain', dir, '--from', 'x/a', '--to', 'x/b', '--port', '80', '--format', 'json']);
    const an = await weir(['analyze', dir]);
    rmSync(dir, { recursive: true, force: true });
    const rcExplain = ex.code;
    const explainOut = ex.stdout;
    const rcAnalyze = an.code;
    assert.equal(rcExplain, 2);
    const j = JSON.parse(explainOut) as { verdict: string; unknownBecause: string[] };
    assert.equal(j.verdict, 'Unknown');
    assert.deepEqual(j.unknownBecause, ['NetworkPolicy x/deny spec.podSelector.matchExpressions[0].operator']);
    assert.equal(rcAnalyze, 2);
    const lines = an.stdout.trim().split('\n');
    assert.ok(lines.includes('x/a[Pod] => x/b[Pod] : UNKNOWN All Connections (invalid: NetworkPolicy x/deny spec.podSelector.matchExpressions[0].operator)'), lines.join('\n'));
    assert.ok(!lines.some((l) => l.startsWith('x/a[Pod] => x/b[Pod] : All')), 'never listed as allowed');
    // --explain says which invalid part the unknown connections hang on.
    const explained = engineOf(np('deny', '  podSelector:\n    matchExpressions: [{ key: app, operator: in, values: [b] }]\n')).engine;
    const text = renderTxt(connectivityList(explained, analyze(explained), { explain: true, focusWorkload: 'x/b' })).split('\n');
    const at = text.indexOf('x/a[Pod] => x/b[Pod] : UNKNOWN All Connections (invalid: NetworkPolicy x/deny spec.podSelector.matchExpressions[0].operator)');
    assert.ok(at >= 0, text.join('\n'));
    assert.equal(text[at + 3], '    unknown: All Connections, because of the invalid NetworkPolicy x/deny spec.podSelector.matchExpressions[0].operator');
  });
});
