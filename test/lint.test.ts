// Policy lint at library level: one finding kind per case, named by code, object and field.

import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { lint, type Finding } from '../src/analyze/lint.js';
import { loadManifests } from '../src/load/index.js';
import type { BaselineAdminNetworkPolicy, Cluster, NetworkPolicy } from '../src/model/cluster.js';
import { PolicyEngine } from '../src/policy/index.js';
import { e2eModel } from './helpers/model.js';

function run(c: Cluster): Finding[] {
  return lint(new PolicyEngine(c), c);
}

function brief(fs: readonly Finding[]): string[] {
  return fs.map((f) => `${f.severity} ${f.code} ${f.object ?? ''} ${f.field ?? ''}`.trim());
}

function np(name: string, spec: Partial<NetworkPolicy>, namespace = 'x'): NetworkPolicy {
  return { namespace, name, podSelector: {}, policyTypes: ['Ingress'], ingress: [], egress: [], mode: 'enforce', ...spec };
}

describe('lint on the fixture with one mistake per object', () => {
  let findings: Finding[] = [];
  before(async () => {
    const { cluster, diagnostics } = await loadManifests(['test/fixtures/cli/lint']);
    assert.deepEqual(diagnostics, [], 'the fixture itself is valid');
    findings = run(cluster);
  });

  it('reports exactly the expected findings, in file order', () => {
    assert.deepEqual(brief(findings), [
      'warning policy-selects-nothing NetworkPolicy prod/ghost spec.podSelector',
      'warning peer-selects-nothing NetworkPolicy prod/api-from-staging spec.ingress[0].from[1]',
      'warning named-port-unresolved NetworkPolicy prod/api-grpc spec.ingress[0].ports[0].port',
      'warning isolates-allows-nothing NetworkPolicy prod/lock-worker spec.policyTypes',
      'notice audit-mode NetworkPolicy dev/audit-tool metadata.annotations',
      'warning rule-shadowed AdminNetworkPolicy allow-dev-http spec.ingress[0]',
      'error anp-priority-conflict AdminNetworkPolicy protect-api spec.priority',
      'warning peer-selects-nothing AdminNetworkPolicy dev-egress spec.egress[0].to[0]',
      'warning anp-duplicate-priority AdminNetworkPolicy prod-egress spec.priority',
      'warning policy-selects-nothing AdminNetworkPolicy qa-only spec.subject',
    ]);
  });

  it('names the shadowing rule and the other policy of a priority clash', () => {
    const shadow = findings.find((f) => f.code === 'rule-shadowed');
    assert.match(shadow?.message ?? '', /AdminNetworkPolicy deny-dev-to-prod \(priority 5\) ingress\[0\] "deny-dev"/);
    const conflict = findings.find((f) => f.code === 'anp-priority-conflict');
    assert.match(conflict?.message ?? '', /^conflicting: .*prod-internal/);
  });

  it('carries file and line of the object', () => {
    const ghost = findings.find((f) => f.object === 'NetworkPolicy prod/ghost');
    assert.equal(ghost?.file, 'test/fixtures/cli/lint/10-networkpolicies.yaml');
    assert.equal(ghost?.line, 2);
  });

  it('does not flag the intentional default-deny', () => {
    assert.ok(!findings.some((f) => f.object === 'NetworkPolicy dev/default-deny'));
  });
});

describe('lint on clusters built in code', () => {
  it('a clean policy set has no findings', () => {
    const c = e2eModel([
      np('allow-b', { podSelector: { matchLabels: { pod: 'a' } }, ingress: [{ peers: [{ kind: 'selector', podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ protocol: 'TCP', port: 'serve-80-tcp' }] }] }),
    ]);
    assert.deepEqual(run(c), []);
  });

  it('except outside its cidr and invalid CIDRs are errors', () => {
    const c = e2eModel([
      np('blocks', {
        ingress: [
          {
            peers: [
              { kind: 'ipBlock', ipBlock: { cidr: '10.0.0.0/24', except: ['10.1.0.0/25', '10.0.0.0/24', '10.0.0.128/25', 'nope'] } },
              { kind: 'ipBlock', ipBlock: { cidr: '10.0.0.300/8', except: [] } },
            ],
            ports: [],
          },
        ],
      }),
    ]);
    assert.deepEqual(brief(run(c)), [
      'error except-outside-cidr NetworkPolicy x/blocks spec.ingress[0].from[0].ipBlock.except[0]',
      'error except-outside-cidr NetworkPolicy x/blocks spec.ingress[0].from[0].ipBlock.except[1]',
      'error invalid-cidr NetworkPolicy x/blocks spec.ingress[0].from[0].ipBlock.except[3]',
      'error invalid-cidr NetworkPolicy x/blocks spec.ingress[0].from[1].ipBlock.cidr',
    ]);
  });

  it('an ipBlock whose excepts cover it entirely matches no address', () => {
    const c = e2eModel([
      np('halves', {
        ingress: [{ peers: [{ kind: 'ipBlock', ipBlock: { cidr: '10.0.0.0/24', except: ['10.0.0.0/25', '10.0.0.128/25'] } }], ports: [] }],
      }),
    ]);
    const fs = run(c);
    assert.deepEqual(brief(fs), ['warning peer-selects-nothing NetworkPolicy x/halves spec.ingress[0].from[0]']);
    assert.match(fs[0].message, /no address/);
  });

  it('an egress named port must exist on some destination', () => {
    const c = e2eModel([
      np('egress-named', {
        podSelector: { matchLabels: { pod: 'a' } },
        policyTypes: ['Egress'],
        egress: [
          { peers: [{ kind: 'selector', podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ protocol: 'TCP', port: 'serve-80-tcp' }] },
          { peers: [{ kind: 'selector', podSelector: { matchLabels: { pod: 'b' } } }], ports: [{ protocol: 'UDP', port: 'serve-80-tcp' }] },
        ],
      }),
    ]);
    assert.deepEqual(brief(run(c)), ['warning named-port-unresolved NetworkPolicy x/egress-named spec.egress[1].ports[0].port']);
  });

  it('a policy named as a deny is taken as intentional', () => {
    const c = e2eModel([np('deny-a', { podSelector: { matchLabels: { pod: 'a' } } })]);
    assert.deepEqual(run(c), []);
  });

  it('a later baseline rule covered by an earlier one of the same policy is shadowed', () => {
    const banp: BaselineAdminNetworkPolicy = {
      name: 'default',
      subject: { namespaces: {} },
      ingress: [
        { name: 'deny-y', action: 'Deny', peers: [{ kind: 'namespaces', namespaces: { matchLabels: { ns: 'y' } } }] },
        { name: 'allow-y-80', action: 'Allow', peers: [{ kind: 'namespaces', namespaces: { matchLabels: { ns: 'y' } } }], ports: [{ kind: 'portNumber', protocol: 'TCP', port: 80 }] },
        { name: 'allow-z', action: 'Allow', peers: [{ kind: 'namespaces', namespaces: { matchLabels: { ns: 'z' } } }] },
      ],
      egress: [],
      mode: 'enforce',
    };
    const fs = run(e2eModel([], { baselineAdminNetworkPolicy: banp }));
    assert.deepEqual(brief(fs), ['warning rule-shadowed BaselineAdminNetworkPolicy default spec.ingress[1]']);
    assert.match(fs[0].message, /ingress\[0\] "deny-y"/);
  });

  it('a rule only partly covered is not shadowed', () => {
    const c = e2eModel([], {
      adminNetworkPolicies: [
        {
          name: 'first',
          priority: 1,
          subject: { namespaces: {} },
          ingress: [{ name: 'deny-80', action: 'Deny', peers: [{ kind: 'namespaces', namespaces: {} }], ports: [{ kind: 'portNumber', protocol: 'TCP', port: 80 }] }],
          egress: [],
          mode: 'enforce',
        },
        {
          name: 'second',
          priority: 2,
          subject: { namespaces: {} },
          ingress: [{ name: 'allow-80-81', action: 'Allow', peers: [{ kind: 'namespaces', namespaces: {} }], ports: [{ kind: 'portRange', protocol: 'TCP', start: 80, end: 81 }] }],
          egress: [],
          mode: 'enforce',
        },
      ],
    });
    assert.deepEqual(run(c), []);
  });

  it('audit-mode admin policies are notices', () => {
    const c = e2eModel([], {
      adminNetworkPolicies: [
        {
          name: 'watch',
          priority: 3,
          subject: { namespaces: {} },
          ingress: [{ name: 'deny-z', action: 'Deny', peers: [{ kind: 'namespaces', namespaces: { matchLabels: { ns: 'z' } } }] }],
          egress: [],
          mode: 'audit',
        },
      ],
    });
    assert.deepEqual(brief(run(c)), ['notice audit-mode AdminNetworkPolicy watch metadata.annotations']);
  });
});
