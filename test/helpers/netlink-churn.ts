// The small cluster shared by test/nft-netlink.test.ts and its churn child: the e2e model with
// x/a isolated for ingress (so it has `in_id` and `in_pod` entries) and selected as a peer by a y policy
// (so its address is in a group set); extra replicas of x/a come and go.

import type { Cluster, Pod } from '../../src/model/cluster.js';
import type { LocalPod } from '../../src/render/index.js';
import { e2eModel, modelPod } from './model.js';
import { genPolicyMatchLabels, nsPodPeer, podPeer, rule, setSpecIngressRules } from './scenarios.js';

export function churnCluster(): Cluster {
  return e2eModel([
    genPolicyMatchLabels('x', 'allow-b', { pod: 'a' }, setSpecIngressRules(rule([podPeer({ matchLabels: { pod: 'b' } })]))),
    genPolicyMatchLabels('y', 'from-x-a', { pod: 'b' }, setSpecIngressRules(rule([nsPodPeer({ matchLabels: { ns: 'x' } }, { matchLabels: { pod: 'a' } })]))),
  ]);
}

export function churnLocal(): LocalPod[] {
  return churnCluster().pods.map((p, i) => ({ key: `${p.namespace}/${p.name}`, ip: p.ip, hostVeth: `wm${i}` }));
}

/** The i-th extra replica of x/a (10.1.1.<10+i>). */
export function extraPod(i: number): Pod {
  return { ...modelPod('x', 'a'), name: `a-extra${i}`, ip: `10.1.1.${10 + i}` };
}
