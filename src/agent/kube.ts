// `weir agent --node NAME (--kubeconfig FILE | --in-cluster)`: the agent on a Kubernetes node.
// The Kubernetes source for this node (src/source/kube) feeds a ClusterAgent in policy-only
// mode; the local port serves the probes, metrics and status (health.ts); a policy the agent
// cannot enforce as written becomes a Kubernetes Event on that policy.

import { canonicalCIDR, parseCIDR } from '../net/address.js';
import { KubeObjectProblem, KubeSource, KubeTransport, loadKubeConfig, type KubeAuth, type ReflectorTiming } from '../source/kube/index.js';
import { KUBE_KINDS, apiVersionOfKind } from '../source/kube/kinds.js';
import type { ClusterEvent, ClusterSource } from '../source/types.js';
import type { AgentStatus } from './status.js';
import { ClusterAgent } from './cluster.js';
import { startHealthServer, type HealthServer } from './health.js';
import { startBalancing, type KubeServicesOptions } from './kube-services.js';
import type { LbLoop } from './lb-loop.js';

export interface KubeAgentOptions {
  readonly node: string;
  readonly auth: KubeAuth;
  readonly version: string;
  /** The node's pod CIDRs; default: the Node object's `spec.podCIDRs`. */
  readonly podCidrs?: readonly string[];
  /** Let pods the agent does not know pass (no fail-closed guard, no bootstrap ruleset). */
  readonly allowUnknownPods?: boolean;
  /** Local HTTP port for probes, metrics and status; false: none. */
  readonly health?: { readonly host: string; readonly port: number } | false;
  readonly netns?: string;
  readonly strict?: boolean;
  readonly statusDir?: string;
  readonly timing?: Partial<ReflectorTiming>;
  readonly signal?: AbortSignal;
  readonly log?: (line: string) => void;
  /** More work on the agent (flow collection, src/flows/agent-flows.ts; the data plane does not import it). */
  readonly extension?: (agent: ClusterAgent) => KubeAgentExtension;
  /**
   * Program the Service NAT in place of kube-proxy (`--services`), with the balancing loop
   * (kube-services.ts). Absent: policy only, beside kube-proxy.
   */
  readonly services?: KubeServicesOptions;
  /** Called once the agent serves (tests: the health URL). */
  readonly onStarted?: (info: { readonly healthUrl?: string }) => void;
}

/** Bad configuration: exit 2 with the sentence. */
export class AgentConfigError extends Error {
  override readonly name = 'AgentConfigError';
}

const POLICY_KINDS = new Set(['NetworkPolicy', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy']);

/** Writes one Warning Event per distinct problem of a policy (core/v1 Event, as kubectl describe shows them). */
export class PolicyEventRecorder {
  private readonly seen = new Set<string>();
  written = 0;
  failed = 0;

  constructor(
    private readonly transport: KubeTransport,
    private readonly node: string,
    private readonly log?: (line: string) => void,
  ) {}

  async record(p: KubeObjectProblem): Promise<void> {
    if (!POLICY_KINDS.has(p.kind)) return;
    const key = `${p.kind}\u0000${p.namespace ?? ''}\u0000${p.objectName}\u0000${p.message}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    const kind = KUBE_KINDS[p.kind];
    // Cluster-scoped policies (ANP, BANP) get their Events in `default`, as the API server does.
    const namespace = p.namespace ?? 'default';
    const now = new Date().toISOString();
    const suffix = `${Date.now().toString(16)}${Math.floor(Math.random() * 0xffff).toString(16)}`;
    const message = `${p.salvaged ? 'enforced in part (what is doubtful is denied)' : 'not enforced (unreadable)'}: ${p.problems.join('; ')}`.slice(0, 1024);
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${p.objectName}.${suffix}`.slice(0, 253), namespace },
      involvedObject: { apiVersion: apiVersionOfKind(kind), kind: p.kind, name: p.objectName, ...(p.namespace ? { namespace: p.namespace } : {}) },
      reason: 'PolicyNotEnforceable',
      message,
      type: 'Warning',
      source: { component: 'weir-agent', host: this.node },
      reportingComponent: 'weir.dev/agent',
      reportingInstance: this.node,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    try {
      await this.transport.postJSON(`/api/v1/namespaces/${encodeURIComponent(namespace)}/events`, event);
      this.written++;
    } catch (e) {
      this.failed++;
      this.seen.delete(key);
      this.log?.(`weir agent ${this.node}: could not write the Event on ${p.kind} ${p.objectName}: ${(e as Error).message}`);
    }
  }
}

/** The node's pod CIDRs from its Node object (`spec.podCIDRs`, else `spec.podCIDR`). */
export async function nodePodCidrs(transport: KubeTransport, node: string): Promise<string[]> {
  const obj = (await transport.getJSON(`/api/v1/nodes/${encodeURIComponent(node)}`)) as { spec?: { podCIDR?: string; podCIDRs?: string[] } };
  const cidrs = obj.spec?.podCIDRs ?? (obj.spec?.podCIDR ? [obj.spec.podCIDR] : []);
  return cidrs.filter((c) => !c.includes(':')); // the ruleset is IPv4
}

/** What an extension of the agent does: see every source batch, start once the agent enforces, stop with it. */
export interface KubeAgentExtension {
  /** Every source batch, before the agent takes it. */
  onEvents?(events: readonly ClusterEvent[]): void;
  /** Once the agent has synced and its first ruleset is in the kernel. */
  start?(): Promise<void>;
  stop?(): Promise<void>;
}

/** The source, with every batch also handed to `also` first (the flow view follows what the agent enforces). */
function teeSource(source: ClusterSource, also: (events: readonly ClusterEvent[]) => void): ClusterSource {
  return {
    description: source.description,
    start: (h) =>
      source.start({
        ...h,
        onEvents: (events) => {
          also(events);
          h.onEvents(events);
        },
      }),
    stop: () => source.stop(),
    snapshot: () => source.snapshot(),
  };
}

/** Canonical IPv4 CIDRs (host bits cleared, as nft interval sets want them). */
function checkCidrs(cidrs: readonly string[], what: string): string[] {
  return cidrs.map((c) => {
    const p = parseCIDR(c);
    if (!p || p.family !== 4) throw new AgentConfigError(`${what} ${c}: not an IPv4 CIDR (weir's ruleset is IPv4)`);
    return canonicalCIDR(p);
  });
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });
}

/**
 * Runs until `signal` aborts. The ruleset stays in the kernel when the agent stops:
 * enforcement must not depend on the agent being alive.
 */
export async function runKubeAgent(opts: KubeAgentOptions): Promise<AgentStatus | undefined> {
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (opts.auth.kind === 'in-cluster' && !process.env.KUBERNETES_SERVICE_HOST) {
    throw new AgentConfigError('--in-cluster: $KUBERNETES_SERVICE_HOST is not set (not running in a pod?); outside a cluster give --kubeconfig FILE');
  }
  if (opts.auth.kind === 'in-cluster' && process.env.KUBERNETES_SERVICE_HOST?.endsWith('.invalid')) {
    // deploy/overlays/kube-proxy-replacement's placeholder: without kube-proxy the agent needs the API server's own address.
    throw new AgentConfigError(`$KUBERNETES_SERVICE_HOST is the placeholder ${process.env.KUBERNETES_SERVICE_HOST}: set the API server's address in the ConfigMap weir-apiserver (deploy/overlays/kube-proxy-replacement/apiserver.yaml)`);
  }
  let config;
  try {
    config = loadKubeConfig(opts.auth);
  } catch (e) {
    throw new AgentConfigError(`${opts.auth.kind === 'in-cluster' ? '--in-cluster' : '--kubeconfig'}: ${(e as Error).message}`);
  }
  const transport = new KubeTransport(config);
  let podCidrs: string[] = [];
  if (!opts.allowUnknownPods) {
    if (opts.podCidrs && opts.podCidrs.length > 0) {
      podCidrs = checkCidrs(opts.podCidrs, '--pod-cidr');
    } else {
      // The API may not answer yet (the node is booting): retry, it is the agent's first need.
      for (let attempt = 1; ; attempt++) {
        try {
          podCidrs = checkCidrs(await nodePodCidrs(transport, opts.node), `Node ${opts.node} spec.podCIDRs:`);
          break;
        } catch (e) {
          if (e instanceof AgentConfigError) throw e;
          if (opts.signal?.aborted) {
            transport.close();
            return undefined;
          }
          const msg = (e as Error).message;
          if (/: 404 /.test(msg)) throw new AgentConfigError(`node ${opts.node} is not in the cluster (GET /api/v1/nodes/${opts.node}: 404)`);
          const wait = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
          log(`weir agent ${opts.node}: reading the Node's pod CIDRs failed (${msg}); retrying in ${wait} ms`);
          await abortableSleep(wait, opts.signal);
        }
      }
      if (podCidrs.length === 0) {
        throw new AgentConfigError(
          `node ${opts.node} has no IPv4 spec.podCIDRs (its CNI's IPAM does not use them): give the node's pod ranges with --pod-cidr, or let unknown pods pass with --allow-unknown-pods`,
        );
      }
    }
  }
  const source = new KubeSource({ auth: { kind: 'config', config }, node: opts.node, ...(opts.timing ? { timing: opts.timing } : {}) });
  const recorder = new PolicyEventRecorder(transport, opts.node, log);
  // An extension (flow collection) sees the same batches as the agent; it is made below, once
  // the agent exists.
  const ext: { current?: KubeAgentExtension } = {};
  const agent = new ClusterAgent({
    node: opts.node,
    source: opts.extension ? teeSource(source, (events) => ext.current?.onEvents?.(events)) : source,
    policyOnly: { podCidrs },
    progress: () => source.deliveredResourceVersion(),
    ...(opts.netns !== undefined ? { netns: opts.netns } : {}),
    strict: opts.strict,
    statusDir: opts.statusDir,
    log,
    onSourceError: (e) => {
      if (e instanceof KubeObjectProblem) void recorder.record(e);
    },
    services: opts.services !== undefined,
  });
  let lb: LbLoop | undefined;
  let health: HealthServer | undefined;
  if (opts.extension) ext.current = opts.extension(agent);
  try {
    if (opts.health !== false) {
      const h = opts.health ?? { host: '127.0.0.1', port: 9791 };
      health = await startHealthServer(agent, {
        host: h.host,
        port: h.port,
        version: opts.version,
        sourceStats: () => source.stats(),
        eventStats: () => ({ written: recorder.written, failed: recorder.failed }),
      });
    }
    opts.onStarted?.(health ? { healthUrl: health.url } : {});
    log(`weir agent ${opts.node}: watching ${source.description}; pod CIDRs ${podCidrs.length > 0 ? podCidrs.join(', ') : 'none (unknown pods pass)'}${health ? `; health on ${health.url}` : ''}${opts.services ? '; Service NAT on (--services)' : ''}`);
    const started = agent.start();
    const aborted = new Promise<void>((resolve) => {
      if (opts.signal?.aborted) resolve();
      else opts.signal?.addEventListener('abort', () => resolve(), { once: true });
    });
    await Promise.race([started, aborted]);
    if (!opts.signal?.aborted) log(`weir agent ${opts.node}: synced and enforcing (${agent.state().localPods} local pods)`);
    if (!opts.signal?.aborted) await ext.current?.start?.();
    if (!opts.signal?.aborted && opts.services) lb = startBalancing(agent.agent, { node: opts.node, ...(opts.netns !== undefined ? { netns: opts.netns } : {}), ...(opts.statusDir !== undefined ? { statusDir: opts.statusDir } : {}), services: opts.services, log });
    await aborted;
    return agent.agent.last;
  } finally {
    await lb?.stop();
    await ext.current?.stop?.();
    await agent.stop();
    await health?.close();
    transport.close();
  }
}
