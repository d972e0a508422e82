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

import { describe, it } from 'node:test';
import { Reachability } from './helpers/reachability.js';
import {
  genPolicy,
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

const NS_LABEL = 'kubernetes.io/metadata.name';
const nsX = 'x';
const nsY = 'y';
const nsZ = 'z';
const pod = (ns: string, name: string): string => `${ns}/${name}`;
const reach = (): Reachability => new Reachability();

/** Upstream makeLargeCIDRForIP: the /4 that contains the IP. */
function makeLargeCIDRForIP(ip: string): string {
  const first = Number(ip.split('.')[0]) & 0xf0;
  return `${first}.0.0.0/4`;
}

describe('upstream NetworkPolicy e2e: NetworkPolicy between server and client', () => {
  it("should support a 'default-deny-ingress' policy", () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-ingress', {}, setSpecIngressRules()));
    s.validate(TCP80, reach().expectPeer({}, { namespace: nsX }, false));
  });

  it("should support a 'default-deny-all' policy", () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-all', {}, setSpecIngressRules(), setSpecEgressRules()));
    s.validate(TCP80, reach().expectPeer({}, { namespace: nsX }, false).expectPeer({ namespace: nsX }, {}, false));
  });

  it('should enforce policy to allow traffic from pods within server namespace based on PodSelector', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'x-a-allows-x-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })]))),
    );
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true));
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

  it('should enforce policy based on NamespaceSelector with MatchExpressions', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-ns-y-match-selector',
        { pod: 'a' },
        setSpecIngressRules(rule([nsPeer({ matchExpressions: [{ key: NS_LABEL, operator: 'In', values: [nsY] }] })])),
      ),
    );
    s.validate(
      TCP80,
      reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
    );
  });

  it('should enforce policy based on PodSelector or NamespaceSelector', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-ns-y-match-selector',
        { pod: 'a' },
        setSpecIngressRules(
          rule([nsPeer({ matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: [nsX] }] }), podPeer({ matchLabels: { pod: 'b' } })]),
        ),
      ),
    );
    s.validate(TCP80, reach().expect(pod(nsX, 'a'), pod(nsX, 'a'), false).expect(pod(nsX, 'c'), pod(nsX, 'a'), false));
  });

  it('should enforce policy based on PodSelector and NamespaceSelector', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-ns-y-podselector-and-nsselector',
        { pod: 'a' },
        setSpecIngressRules(
          rule([nsPodPeer({ matchExpressions: [{ key: NS_LABEL, operator: 'NotIn', values: [nsX] }] }, { matchLabels: { pod: 'b' } })]),
        ),
      ),
    );
    s.validate(
      TCP80,
      reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsY, 'b'), pod(nsX, 'a'), true).expect(pod(nsZ, 'b'), pod(nsX, 'a'), true),
    );
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

  it('should enforce policy based on Ports', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-client-a-via-ns-selector',
        { pod: 'a' },
        setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })], [port(81, 'TCP')])),
      ),
    );
    s.validate(
      TCP81,
      reach()
        .expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false)
        .expectPeer({ namespace: nsY }, { namespace: nsX, pod: 'a' }, true)
        .expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
    );
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

  it('should enforce multiple, stacked policies with overlapping podSelectors', () => {
    const allowedLabels = { matchLabels: { [NS_LABEL]: nsY } };
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-client-a-via-ns-selector', { pod: 'a' }, setSpecIngressRules(rule([nsPeer(allowedLabels)], [port(81, 'TCP')]))),
    );
    const reachabilityALLOW = reach()
      .expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false)
      .expectPeer({ namespace: nsY }, { namespace: nsX, pod: 'a' }, true)
      .expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false);
    s.validate(TCP81, reachabilityALLOW, 'port 81');
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false), 'port 80 before');
    s.createPolicy(
      genPolicyMatchLabels(nsX, 'allow-client-a-via-ns-selector-80', { pod: 'a' }, setSpecIngressRules(rule([nsPeer(allowedLabels)], [port(80, 'TCP')]))),
    );
    s.validate(TCP80, reachabilityALLOW, 'port 80 after');
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

  it('should allow ingress access from namespace on one named port', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-client-a-via-ns-selector-80',
        { pod: 'a' },
        setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })], [port('serve-80-tcp', 'TCP')])),
      ),
    );
    s.validate(
      TCP80,
      reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false),
    );
    s.validate(TCP81, reach().expectAllIngress(pod(nsX, 'a'), false));
  });

  it('should allow egress access on one named port', () => {
    const s = new Scenario().createPolicy(genPolicyMatchLabels(nsX, 'allow-egress', {}, setSpecEgressRules(rule([], [port('serve-80-tcp')]))));
    s.validate(TCP80, reach());
    s.validate(TCP81, reach().expectPeer({ namespace: nsX }, {}, false));
  });

  it('should enforce updated policy', () => {
    const s = new Scenario().createPolicy(genPolicyMatchLabels(nsX, 'allow-all-mutate-to-deny-all', {}, setSpecIngressRules(rule())));
    s.validate(TCP81, reach(), 'allow all');
    s.updatePolicy(genPolicyMatchLabels(nsX, 'allow-all-mutate-to-deny-all', {}, setSpecIngressRules()));
    s.validate(TCP81, reach().expectPeer({}, { namespace: nsX }, false), 'deny all');
  });

  it('should allow ingress access from updated namespace', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-client-a-via-ns-selector', { pod: 'a' }, setSpecIngressRules(rule([nsPeer({ matchLabels: { ns2: 'updated' } })]))),
    );
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false), 'before');
    s.addNamespaceLabel(nsY, 'ns2', 'updated');
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false).expectPeer({ namespace: nsY }, {}, true), 'after');
  });

  it('should allow ingress access from updated pod', () => {
    const matchLabels = { pod: 'b', pod2: 'updated' };
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-client-a-via-pod-selector', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels })]))),
    );
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false), 'before');
    s.addPodLabels(pod(nsX, 'b'), matchLabels);
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true), 'after');
  });

  it('should deny ingress from pods on other namespaces', () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-empty-policy', {}, setSpecIngressRules(rule([podPeer({ matchLabels: {} })]))));
    s.validate(TCP80, reach().expectPeer({ namespace: nsY }, { namespace: nsX }, false).expectPeer({ namespace: nsZ }, { namespace: nsX }, false));
  });

  it('should deny ingress access to updated pod', () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-ingress-via-label-selector', { matchLabels: { target: 'isolated' } }, setSpecIngressRules()));
    s.validate(TCP80, reach(), 'before');
    s.addPodLabels(pod(nsX, 'a'), { target: 'isolated' });
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false), 'after');
  });

  it('should deny egress from pods based on PodSelector', () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-egress-pod-a', { matchLabels: { pod: 'a' } }, setSpecEgressRules()));
    s.validate(TCP80, reach().expectAllEgress(pod(nsX, 'a'), false));
  });

  it('should deny egress from all pods in a namespace', () => {
    const s = new Scenario().createPolicy(genPolicy(nsX, 'deny-egress-ns-x', {}, setSpecEgressRules()));
    s.validate(TCP80, reach().expectPeer({ namespace: nsX }, {}, false));
  });

  it('should work with Ingress, Egress specified together', () => {
    const base = genPolicyMatchLabels(
      nsX,
      'allow-client-a-via-pod-selector',
      { pod: 'a' },
      setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })])),
    );
    // Upstream appends an egress rule on port 80 (no protocol: TCP) and sets both policyTypes.
    const policy = { ...base, egress: [rule([], [port(80)])], policyTypes: ['Egress', 'Ingress'] as ('Egress' | 'Ingress')[] };
    const s = new Scenario().createPolicy(policy);
    s.validate(TCP80, reach().expectAllIngress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true), 'port 80');
    s.validate(
      TCP81,
      reach().expectAllIngress(pod(nsX, 'a'), false).expectAllEgress(pod(nsX, 'a'), false).expect(pod(nsX, 'b'), pod(nsX, 'a'), true),
      'port 81',
    );
  });

  it('should support denying of egress traffic on the client side (even if the server explicitly allows this traffic)', () => {
    const ingressRule = rule([nsPodPeer({ matchLabels: { [NS_LABEL]: nsX } }, { matchLabels: { pod: 'a' } })]);
    const s = new Scenario()
      .createPolicy(
        genPolicyMatchLabels(
          nsX,
          'allow-to-ns-y-pod-a',
          { pod: 'a' },
          setSpecEgressRules(rule([nsPodPeer({ matchLabels: { [NS_LABEL]: nsY } }, { matchLabels: { pod: 'a' } })])),
        ),
      )
      .createPolicy(genPolicyMatchLabels(nsY, 'allow-from-xa-on-ya-match-selector', { pod: 'a' }, setSpecIngressRules(ingressRule)))
      .createPolicy(genPolicyMatchLabels(nsY, 'allow-from-xa-on-yb-match-selector', { pod: 'b' }, setSpecIngressRules(ingressRule)));
    s.validate(
      TCP80,
      reach()
        .expectPeer({ namespace: nsX, pod: 'a' }, {}, false)
        .expectPeer({}, { namespace: nsY, pod: 'a' }, false)
        .expectPeer({ namespace: nsX, pod: 'a' }, { namespace: nsY, pod: 'a' }, true)
        .expectPeer({}, { namespace: nsY, pod: 'b' }, false),
    );
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

  it('should enforce multiple ingress policies with ingress allow-all policy taking precedence', () => {
    const s = new Scenario().createPolicy(genPolicyMatchLabels(nsX, 'allow-ingress-port-80', {}, setSpecIngressRules(rule([], [port(80)]))));
    s.validate(TCP81, reach().expectPeer({}, { namespace: nsX }, false), 'port 80 only');
    s.createPolicy(genPolicyMatchLabels(nsX, 'allow-ingress', {}, setSpecIngressRules(rule())));
    s.validate(TCP81, reach(), 'allow all');
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

  it('should allow egress access to server in CIDR block', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-client-a-via-cidr-egress-rule', { pod: 'a' }, setSpecEgressRules(rule([ipBlockPeer(`${modelPodIp(nsY, 'b')}/32`)]))),
    );
    s.validate(TCP80, reach().expectAllEgress(pod(nsX, 'a'), false).expect(pod(nsX, 'a'), pod(nsY, 'b'), true));
  });

  it('should enforce except clause while egress access to server in CIDR block', () => {
    const podB = modelPodIp(nsX, 'b');
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-client-a-via-cidr-egress-rule',
        { pod: 'a' },
        setSpecEgressRules(rule([ipBlockPeer(makeLargeCIDRForIP(podB), [`${podB}/32`])])),
      ),
    );
    s.validate(TCP80, reach().expect(pod(nsX, 'a'), pod(nsX, 'b'), false));
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

  it("should not mistakenly treat 'protocol: SCTP' as 'protocol: TCP', even if the plugin doesn't support SCTP", () => {
    const s = new Scenario()
      .createPolicy(genPolicy(nsX, 'deny-ingress', {}, setSpecIngressRules()))
      .createPolicy(genPolicyMatchLabels(nsX, 'allow-only-sctp-ingress-on-port-81', { pod: 'a' }, setSpecIngressRules(rule([], [port(81, 'SCTP')]))));
    s.validate(TCP81, reach().expectPeer({}, { namespace: nsX }, false));
    // Beyond upstream (this machine's kernel has no SCTP, the analyzer checks it): SCTP/81
    // to x/a is what the second policy allows.
    s.validate(SCTP81, reach().expectPeer({}, { namespace: nsX }, false).expectAllIngress(pod(nsX, 'a'), true), 'SCTP');
  });

  it("should properly isolate pods that are selected by a policy allowing SCTP, even if the plugin doesn't support SCTP", () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-only-sctp-ingress-on-port-80', { pod: 'a' }, setSpecIngressRules(rule([], [port(80, 'SCTP')]))),
    );
    s.validate(TCP81, reach().expectAllIngress(pod(nsX, 'a'), false));
    s.validate(SCTP80, reach(), 'SCTP 80 (beyond upstream)');
    s.validate(SCTP81, reach().expectAllIngress(pod(nsX, 'a'), false), 'SCTP 81 (beyond upstream)');
  });

  it('should not allow access by TCP when a policy specifies only UDP', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(nsX, 'allow-only-udp-ingress-on-port-81', { pod: 'a' }, setSpecIngressRules(rule([], [port(81, 'UDP')]))),
    );
    s.validate(TCP81, reach().expectAllIngress(pod(nsX, 'a'), false));
    s.validate(UDP81, reach(), 'UDP 81 (beyond upstream)');
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
  it('should support enforcing policy based on port range (endPort) covering both model ports', () => {
    const s = new Scenario().createPolicy(
      genPolicyMatchLabels(
        nsX,
        'allow-ns-y-ports-80-81',
        { pod: 'a' },
        setSpecIngressRules(rule([nsPeer({ matchLabels: { [NS_LABEL]: nsY } })], [port(80, 'TCP', 81)])),
      ),
    );
    const onlyY = (): Reachability =>
      reach().expectPeer({ namespace: nsX }, { namespace: nsX, pod: 'a' }, false).expectPeer({ namespace: nsZ }, { namespace: nsX, pod: 'a' }, false);
    s.validate(TCP80, onlyY(), 'TCP 80');
    s.validate(TCP81, onlyY(), 'TCP 81');
    s.validate(UDP80, reach().expectAllIngress(pod(nsX, 'a'), false), 'UDP 80');
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
