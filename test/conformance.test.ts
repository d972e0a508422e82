// The upstream NetworkPolicy e2e suite (kubernetes test/e2e/network/netpol/network_policy.go),
// scenario by scenario, on the full x/y/z × a/b/c model. Each policy is built as upstream
// builds it (GenNetworkPolicyWithNameAndPodMatchLabel + SetSpecIngressRules/SetSpecEgressRules)
// and each expected matrix is written as upstream writes it. Recent upstream versions run
// every test on a subset of the 9 pods; where the subset hid a cell that the full model shows,
// the expectation adds the cell the older 9-pod version of the test had (marked "9-pod").
// As upstream (ignoreLoopback = true), pod → same pod cells are not compared.
//
// Every `validate` checks the incrementally updated engine AND a fresh engine built from the
// same final state, and both against each other.
//
// The cases in UPSTREAM_CASES (helpers/scenarios.ts) are defined there because
// lab-conformance.test.ts runs them with real packets too.

import { describe, it } from 'node:test';
import { Reachability } from './helpers/reachability.js';
import {
  genPolicy,
  makeLargeCIDRForIP,
  NS_LABEL,
  runCase,
  UPSTREAM_CASES,
  genPolicyMatchLabels,
  ipBlockPeer,
  nsPeer,
  nsPodPeer,
  podPeer,
  port,
  rule,
  Scenario,
  SCTP80,
  SCTP81,
  setSpecEgressRules,
  setSpecIngressRules,
  TCP80,
  TCP81,
  UDP80,
  UDP81,
} from './helpers/scenarios.js';
import { modelPodIp } from './helpers/model.js';

const nsX = 'x';
const nsY = 'y';
const nsZ = 'z';
const pod = (ns: string, name: string): string => `${ns}/${name}`;
const reach = (): Reachability => new Reachability();

describe('upstream NetworkPolicy e2e: NetworkPolicy between server and client', () => {
  it(UPSTREAM_CASES.defaultDenyIngress.name, () => {
    runCase(UPSTREAM_CASES.defaultDenyIngress);
  });

  it(UPSTREAM_CASES.defaultDenyAll.name, () => {
    runCase(UPSTREAM_CASES.defaultDenyAll);
  });

  it(UPSTREAM_CASES.podSelectorSameNamespace.name, () => {
    runCase(UPSTREAM_CASES.podSelectorSameNamespace);
  });

  it('should enforce policy to allow ingress traffic for a target', () => {
    const s = new Scenario()
      .createPolicy(genPolicy(nsX, 'deny-all', {}, setSpecIngressRules()))
      .createPolicy(genPolicyMatchLabels(nsX, 'allow-all-to-a', { pod: 'a' }, setSpecIngressRules(rule([nsPodPeer({}, {})]))));
    s.validate(
      TCP80,
      reach()
        .expectAllIngress(pod(nsX, 'a'), true)
        .expectAllIngress(pod(nsX, 'b'), false)
        // 9-pod: x/c is isolated by deny-all like x/b.
        .expectAllIngress(pod(nsX, 'c'), false),
    );
  });

  it('should enforce policy to allow ingress traffic from pods in all namespaces', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-from-another-ns', { pod: 'a' }, setSpecIngressRules(rule([nsPeer({ matchLabels: {} })]))),
    );
    s.validate(TCP80, reach());
  });

  it('should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-client-a-via-ns-selector', { pod: 'a' }, setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })]))),
    );
    s.validate(
      TCP80,
      reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
    );
  });

  it('should enforce policy based on PodSelector with MatchExpressions', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'x-a-allows-x-b',
        { pod: 'a' },
        setSpecIngressRules(rule([podPeer({ matchExpressions: [{ key: 'pod', operator: 'In', values: ['b'] }] })])),
      ),
    );
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true));
  });

  it(UPSTREAM_CASES.namespaceSelectorMatchExpressions.name, () => {
    runCase(UPSTREAM_CASES.namespaceSelectorMatchExpressions);
  });

  it(UPSTREAM_CASES.podSelectorOrNamespaceSelector.name, () => {
    runCase(UPSTREAM_CASES.podSelectorOrNamespaceSelector);
  });

  it(UPSTREAM_CASES.podSelectorAndNamespaceSelector.name, () => {
    runCase(UPSTREAM_CASES.podSelectorAndNamespaceSelector);
  });

  it('should enforce policy based on Multiple PodSelectors and NamespaceSelectors', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-ns-y-z-pod-b-c',
        { pod: 'a' },
        setSpecIngressRules(
          rule([
            nsPodPeer(
              { matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: [nsX] }] },
              { matchExpressions: [{ key: 'pod', operator: 'In', values: ['b', 'c'] }] },
            ),
          ]),
        ),
      ),
    );
    s.validate(
      TCP80,
      reach()
        .expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false)
        .expect(pod(nsY, 'a'), pod(nsX, 'a'), false)
        // 9-pod: z/a matches the namespace but not the pod selector.
        .expect(pod(nsZ, 'a'), pod(nsX, 'a'), false),
    );
  });

  it('should enforce policy based on any PodSelectors', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-ns-x-pod-b-c',
        { pod: 'a' },
        setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } }), podPeer({ matchLabels: { pod: 'c' } })])),
      ),
    );
    s.validate(
      TCP80,
      reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true).expect(pod(nsX, 'c'), pod(nsX, 'a'), true),
    );
  });

  for (const probe of [TCP80, UDP80, SCTP80]) {
    it(`should enforce policy to allow traffic only from a pod in a different namespace based on PodSelector and NamespaceSelector (${probe.protocol})`, () => {
      const s = new Scenario().createPolicy(
        genPolicyMatchLabels(
          nsX,
          'allow-ns-y-pod-a-via-namespace-pod-selector',
          { pod: 'a' },
          setSpecIngressRules(rule([nsPodPeer({ matchLabels: { [NS_LABEL]: nsY } }, { matchLabels: { pod: 'a' } })])),
        ),
      );
      s.validate(probe, reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsY, 'a'), pod(nsX, 'a'), true));
    });
  }

  it(UPSTREAM_CASES.ports.name, () => {
    runCase(UPSTREAM_CASES.ports);
  });

  for (const [probe, protocol] of [
    [UDP81, 'UDP'],
    [SCTP81, 'SCTP'],
  ] as const) {
    it(`should enforce policy based on Ports (${protocol})`, () => {
      const s = new Scenario().createPolicy(
        genPolicyMatchLabels(
          nsX,
          'allow-ingress-on-port-81-ns-x',
          { pod: 'a' },
          setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })], [port(81, protocol)])),
        ),
      );
      s.validate(
        probe,
        reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
      );
    });
  }

  it(UPSTREAM_CASES.stackedPolicies.name, () => {
    runCase(UPSTREAM_CASES.stackedPolicies);
  });

  it('should support allow-all policy', () => {
    const s = new Scenario().createPolicy(genPolicyMatchLabels(nsX, 'allow-all', {}, setSpecIngressRules(rule())));
    s.validate(TCP80, reach());
    s.validate(TCP81, reach());
  });

  it('should allow ingress access on one named port', () => {
    const s = new Scenario().createPolicy(genPolicyMatchLabels(nsX, 'allow-all', {}, setSpecIngressRules(rule([], [port('serve-81-tcp')]))));
    s.validate(TCP81, reach());
    s.validate(TCP80, reach().expectPeer({}, { namespace: nsX }, false));
  });

  it(UPSTREAM_CASES.namedPortFromNamespace.name, () => {
    runCase(UPSTREAM_CASES.namedPortFromNamespace);
  });

  it('should allow egress access on one named port', () => {
    const s = new Scenario().createPolicy(genPolicyMatchLabels(nsX, 'allow-egress', {}, setSpecEgressRules(rule([], [port('serve-80-tcp')]))));
    s.validate(TCP80, reach());
    s.validate(TCP81, reach().expectPeer({ namespace: nsX }, {}, false));
  });

  it(UPSTREAM_CASES.updatedPolicy.name, () => {
    runCase(UPSTREAM_CASES.updatedPolicy);
  });

  it(UPSTREAM_CASES.updatedNamespace.name, () => {
    runCase(UPSTREAM_CASES.updatedNamespace);
  });

  it(UPSTREAM_CASES.updatedPod.name, () => {
    runCase(UPSTREAM_CASES.updatedPod);
  });

  it('should deny ingress from pods on other namespaces', () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-empty-policy', {}, setSpecIngressRules(rule([podPeer({ matchLabels: {} })]))));
    s.validate(TCP80, reach().expectPeer({ namespace: nsY }, { namespace: nsX }, false).expectPeer({ namespace: nsZ }, { namespace: nsX }, false));
  });

  it(UPSTREAM_CASES.deniedUpdatedPod.name, () => {
    runCase(UPSTREAM_CASES.deniedUpdatedPod);
  });

  it(UPSTREAM_CASES.denyEgressByPodSelector.name, () => {
    runCase(UPSTREAM_CASES.denyEgressByPodSelector);
  });

  it('should deny egress from all pods in a namespace', () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-egress-ns-x', {}, setSpecEgressRules()));
    s.validate(TCP80, reach().expectPeer({ namespace: nsX }, {}, false));
  });

  it(UPSTREAM_CASES.ingressAndEgress.name, () => {
    runCase(UPSTREAM_CASES.ingressAndEgress);
  });

  it(UPSTREAM_CASES.clientSideEgressDeny.name, () => {
    runCase(UPSTREAM_CASES.clientSideEgressDeny);
  });

  it('should enforce egress policy allowing traffic to a server in a different namespace based on PodSelector and NamespaceSelector', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-to-ns-y-pod-a',
        { pod: 'a' },
        setSpecEgressRules(rule([nsPodPeer({ matchLabels: { [NS_LABEL]: nsY } }, { matchLabels: { pod: 'a' } })])),
      ),
    );
    s.validate(TCP80, reach().expectAllEgress(pod(nsX, 'a'), false).expect(pod(nsX, 'a'), pod(nsY, 'a'), true));
  });

  it('should enforce ingress policy allowing any port traffic to a server on a specific protocol', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-ingress-by-proto', { pod: 'a' }, setSpecIngressRules(rule([], [port(undefined, 'TCP')]))),
    );
    s.validate(TCP80, reach(), 'TCP');
    s.validate(UDP80, reach().expectPeer({}, { namespace: nsX, pod: 'a' }, false), 'UDP');
  });

  it(UPSTREAM_CASES.ingressAllowAllPrecedence.name, () => {
    runCase(UPSTREAM_CASES.ingressAllowAllPrecedence);
  });

  it('should enforce multiple egress policies with egress allow-all policy taking precedence', () => {
    const s = new Scenario().createPolicy(genPolicyMatchLabels(nsX, 'allow-egress-port-80', {}, setSpecEgressRules(rule([], [port(80)]))));
    s.validate(TCP81, reach().expectPeer({ namespace: nsX }, {}, false), 'port 80 only');
    s.createPolicy(genPolicyMatchLabels(nsX, 'allow-egress', {}, setSpecEgressRules(rule())));
    s.validate(TCP81, reach(), 'allow all');
  });

  it('should stop enforcing policies after they are deleted', () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-all', {}, setSpecIngressRules(), setSpecEgressRules()));
    s.validate(TCP80, reach().expectPeer({ namespace: nsX }, {}, false).expectPeer({}, { namespace: nsX }, false), 'with policy');
    s.deleteAllPolicies();
    s.validate(TCP80, reach(), 'after delete');
  });

  it(UPSTREAM_CASES.egressToCidr.name, () => {
    runCase(UPSTREAM_CASES.egressToCidr);
  });

  it(UPSTREAM_CASES.ipBlockExcept.name, () => {
    runCase(UPSTREAM_CASES.ipBlockExcept);
  });

  it('should ensure an IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed', () => {
    const podB = modelPodIp(nsX, 'b');
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-client-a-via-cidr-egress-rule',
        { pod: 'a' },
        setSpecEgressRules(rule([ipBlockPeer(makeLargeCIDRForIP(podB), [`${podB}/32`])])),
      ),
    );
    s.validate(TCP80, reach().expect(pod(nsX, 'a'), pod(nsX, 'b'), false), 'except');
    s.updatePolicy(
      genPolicyMatchLabels(nsX, 'allow-client-a-via-cidr-egress-rule', { pod: 'a' }, setSpecEgressRules(rule([ipBlockPeer(`${podB}/32`)]))),
    );
    s.validate(TCP80, reach().expectAllEgress(pod(nsX, 'a'), false).expect(pod(nsX, 'a'), pod(nsX, 'b'), true), 'allow podB');
  });

  it('should enforce policies to check ingress and egress policies can be controlled independently based on PodSelector', () => {
    const targetLabels = { pod: 'a' };
    const s = new Scenario().createPolicy(genPolicy(nsX, 'allow-egress-for-target', { matchLabels: targetLabels }, setSpecEgressRules(rule())));
    s.validate(TCP80, reach(), 'allow egress');
    s.createPolicy(genPolicy(nsX, 'deny-ingress-via-label-selector', { matchLabels: targetLabels }, setSpecIngressRules()));
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false), 'deny ingress');
  });

  it(UPSTREAM_CASES.sctpIsNotTcp.name, () => {
    runCase(UPSTREAM_CASES.sctpIsNotTcp);
  });

  it("should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP", () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-only-sctp-ingress-on-port-80', { pod: 'a' }, setSpecIngressRules(rule([], [port(80, 'SCTP')]))),
    );
    s.validate(TCP81, reach().expectAllIngress(pod(nsX, 'a'), false));
    s.validate(SCTP80, reach(), 'SCTP 80 (beyond upstream)');
    s.validate(SCTP81, reach().expectAllIngress(pod(nsX, 'a'), false), 'SCTP 81 (beyond upstream)');
  });

  it(UPSTREAM_CASES.udpOnly.name, () => {
    runCase(UPSTREAM_CASES.udpOnly);
  });

  it('should enforce policy to allow traffic based on NamespaceSelector with MatchLabels using default ns label', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-client-a-via-ns-selector-for-immutable-ns-label',
        { pod: 'a' },
        setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })])),
      ),
    );
    s.validate(
      TCP80,
      reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
    );
  });

  it('should enforce policy based on NamespaceSelector with MatchExpressions using default ns label', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-ns-y-match-selector-for-immutable-ns-label',
        { pod: 'a' },
        setSpecEgressRules(rule([nsPeer({ matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: [nsY] }] })])),
      ),
    );
    s.validate(TCP80, reach().expectPeer({ namespace: nsX, pod: 'a' }, { namespace: nsY }, false));
  });
});

describe('upstream NetworkPolicy e2e: NetworkPolicy between server and client using UDP / SCTP', () => {
  for (const probe of [UDP80, SCTP80]) {
    it(`should support a 'default-deny-ingress' policy (${probe.protocol})`, () => {
      const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-all', {}, setSpecIngressRules()));
      s.validate(probe, reach().expectPeer({}, { namespace: nsX }, false));
    });
  }
});

// Port ranges (networking/v1 `endPort`, KEP-2079): "indicates that the range of ports from
// port to endPort if set, inclusive, should be allowed by the policy". The current upstream
// file has no endPort case; these follow its style on the same model.
describe('port range (endPort), in the upstream style', () => {
  it(UPSTREAM_CASES.endPortBothModelPorts.name, () => {
    runCase(UPSTREAM_CASES.endPortBothModelPorts);
  });

  it('should enforce a port range (endPort) that starts after port 80 only from its first port', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-81-90', { pod: 'a' }, setSpecIngressRules(rule([], [port(81, 'TCP', 90)]))),
    );
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false), 'TCP 80');
    s.validate(TCP81, reach(), 'TCP 81');
  });

  it('should enforce an egress port range (endPort) that ends at port 80', () => {
    const s = new Scenario().createPolicy(genPolicyMatchLabels(nsX, 'allow-egress-79-80', {}, setSpecEgressRules(rule([], [port(79, 'TCP', 80)]))));
    s.validate(TCP80, reach(), 'TCP 80');
    s.validate(TCP81, reach().expectPeer({ namespace: nsX }, {}, false), 'TCP 81');
    s.validate(UDP80, reach().expectPeer({ namespace: nsX }, {}, false), 'UDP 80');
  });
});
