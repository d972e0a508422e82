// zod schemas for the manifests weir reads: the single source of truth for what is valid.
//
// Policy kinds (NetworkPolicy, AdminNetworkPolicy, BaselineAdminNetworkPolicy) use strict
// objects in their spec: an unknown field there is almost always a typo or wrong indentation
// (`ingres:`, `from` one level too deep), and silently ignoring it would change what the
// policy allows. Workloads, Pods and Services are lenient: only the fields weir uses are
// checked, everything else is ignored (z.object strips it: a dump's managedFields, status and
// the rest never reach the model, and are not copied on the way).
//
// Semantic checks (CIDRs, selectors, ports) are zod refinements that attach a stable
// diagnostic code in `params.code`; src/load/issues.ts turns zod issues into Diagnostics.

import { z } from 'zod';
import { PROTOCOLS } from '../model/cluster.js';
import { isStrictSubset, parseCIDR, parseIP } from '../net/address.js';
import { dropNulls } from './documents.js';
import { checkLabelKey, checkLabelValue, checkPortName, checkPortNumber } from './syntax.js';

type Ctx = z.RefinementCtx;

function fail(ctx: Ctx, code: string, message: string, path: (string | number)[] = []): void {
  ctx.addIssue({ code: 'custom', message, path, params: { code } });
}

// ------------------------------------------------------------------ common pieces

export const protocolSchema = z.enum(PROTOCOLS as ['TCP', 'UDP', 'SCTP']);

/** A label map; keys and values follow the Kubernetes label syntax. */
export const labelsSchema = z.record(z.string(), z.string()).superRefine((labels, ctx) => {
  for (const [key, value] of Object.entries(labels)) {
    const keyError = checkLabelKey(key);
    if (keyError) fail(ctx, 'invalid-label', keyError, [key]);
    const valueError = checkLabelValue(value);
    if (valueError) fail(ctx, 'invalid-label', valueError, [key]);
  }
});

const selectorRequirementSchema = z
  .strictObject({
    key: z.string(),
    operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
    values: z.array(z.string()).optional(),
  })
  .superRefine((req, ctx) => {
    const keyError = checkLabelKey(req.key);
    if (keyError) fail(ctx, 'invalid-selector', keyError, ['key']);
    const values = req.values ?? [];
    // metav1.LabelSelectorRequirement: "If the operator is In or NotIn, the values array must
    // be non-empty. If the operator is Exists or DoesNotExist, the values array must be empty."
    if ((req.operator === 'In' || req.operator === 'NotIn') && values.length === 0) {
      fail(ctx, 'invalid-selector', `operator ${req.operator} requires at least one value`, ['values']);
    }
    if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && values.length > 0) {
      fail(ctx, 'invalid-selector', `operator ${req.operator} must not have values`, ['values']);
    }
    values.forEach((v, i) => {
      const valueError = checkLabelValue(v);
      if (valueError) fail(ctx, 'invalid-selector', valueError, ['values', i]);
    });
  });

export const labelSelectorSchema = z.strictObject({
  matchLabels: z
    .record(z.string(), z.string())
    .superRefine((labels, ctx) => {
      for (const [key, value] of Object.entries(labels)) {
        const keyError = checkLabelKey(key);
        if (keyError) fail(ctx, 'invalid-selector', keyError, [key]);
        const valueError = checkLabelValue(value);
        if (valueError) fail(ctx, 'invalid-selector', valueError, [key]);
      }
    })
    .optional(),
  matchExpressions: z.array(selectorRequirementSchema).optional(),
});
export type RawLabelSelector = z.infer<typeof labelSelectorSchema>;

// Names must not be empty; their RFC 1123 syntax is checked by the parser, which reads a
// name the API server would reject with a warning (its meaning is not in doubt).
const nameSchema = z.string().min(1);
const namespaceNameSchema = z.string().min(1);

/** An owner reference without `kind` is read (with a warning): weir resolves it by name. */
const ownerReferenceSchema = z.object({ kind: z.string().optional(), name: z.string(), controller: z.boolean().optional() });

/** metadata as weir reads it; every other metadata field (uid, managedFields, ...) passes. */
export const objectMetaSchema = z.object({
  name: nameSchema,
  namespace: namespaceNameSchema.optional(),
  labels: labelsSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  ownerReferences: z.array(ownerReferenceSchema).optional(),
});
export type RawObjectMeta = z.infer<typeof objectMetaSchema>;

export const MODE_ANNOTATION = 'weir.dev/mode';

/** Policy metadata additionally carries weir's `weir.dev/mode` annotation. */
const policyMetaSchema = objectMetaSchema.superRefine((meta, ctx) => {
  const mode = meta.annotations?.[MODE_ANNOTATION];
  if (mode !== undefined && mode !== 'audit' && mode !== 'enforce') {
    fail(ctx, 'invalid-mode', `annotation ${MODE_ANNOTATION} must be "audit" or "enforce", got "${mode}"`, [
      'annotations',
      MODE_ANNOTATION,
    ]);
  }
});

/** What every manifest must have before its kind can be looked at. */
export const headerSchema = z.object({
  apiVersion: z.string().min(1),
  kind: z.string().min(1),
  metadata: z.object({ name: z.string().min(1), namespace: z.string().optional() }),
});
export type RawHeader = z.infer<typeof headerSchema>;

// --------------------------------------------------------------- NetworkPolicy

const ipBlockSchema = z
  .strictObject({ cidr: z.string(), except: z.array(z.string()).optional() })
  .superRefine((block, ctx) => {
    const cidr = parseCIDR(block.cidr);
    if (!cidr) fail(ctx, 'invalid-cidr', `invalid CIDR "${block.cidr}" (expected e.g. 10.0.0.0/24 or 2001:db8::/64)`, ['cidr']);
    (block.except ?? []).forEach((text, i) => {
      const ex = parseCIDR(text);
      if (!ex) {
        fail(ctx, 'invalid-cidr', `invalid CIDR "${text}" in except`, ['except', i]);
      } else if (cidr && !isStrictSubset(ex, cidr)) {
        // networking validation (ValidateIPBlock): each except entry "must be a strict subset of `cidr`".
        fail(ctx, 'except-outside-cidr', `except entry "${text}" must be a strict subset of cidr "${block.cidr}"`, ['except', i]);
      }
    });
  });

const networkPolicyPeerSchema = z
  .strictObject({
    podSelector: labelSelectorSchema.optional(),
    namespaceSelector: labelSelectorSchema.optional(),
    ipBlock: ipBlockSchema.optional(),
  })
  .superRefine((peer, ctx) => {
    const set = [peer.podSelector, peer.namespaceSelector, peer.ipBlock].filter((x) => x !== undefined).length;
    if (set === 0) {
      fail(ctx, 'invalid-peer', 'must specify a peer: podSelector, namespaceSelector and/or ipBlock');
    } else if (set > 1 && peer.ipBlock !== undefined) {
      // NetworkPolicyPeer: "If this field [ipBlock] is set then neither of the other fields can be."
      fail(ctx, 'invalid-peer', 'may not specify more than 1 peer type: ipBlock cannot be combined with podSelector or namespaceSelector');
    }
  });

const portNumberOrName = z.union([z.number().int(), z.string()]);

const networkPolicyPortSchema = z
  .strictObject({
    protocol: protocolSchema.optional(),
    port: portNumberOrName.optional(),
    endPort: z.number().int().optional(),
  })
  .superRefine((p, ctx) => {
    if (typeof p.port === 'number') {
      const err = checkPortNumber(p.port);
      if (err) fail(ctx, 'invalid-port', err, ['port']);
    } else if (typeof p.port === 'string') {
      const err = checkPortName(p.port);
      if (err) fail(ctx, 'invalid-port-name', err, ['port']);
    }
    if (p.endPort !== undefined) {
      // NetworkPolicyPort.endPort: "This field cannot be defined if the port field is not
      // defined or if the port field is defined as a named (string) port. The endPort must
      // be equal or greater than port."
      if (p.port === undefined) {
        fail(ctx, 'endport-without-port', 'endPort may not be specified when port is not specified', ['endPort']);
      } else if (typeof p.port === 'string') {
        fail(ctx, 'endport-named-port', `endPort may not be specified when port is a named port ("${p.port}")`, ['endPort']);
      } else {
        const err = checkPortNumber(p.endPort);
        if (err) fail(ctx, 'invalid-port', err, ['endPort']);
        else if (p.endPort < p.port) {
          fail(ctx, 'invalid-endport', `endPort ${p.endPort} must be greater than or equal to port ${p.port}`, ['endPort']);
        }
      }
    }
  });

const ingressRuleSchema = z.strictObject({
  from: z.array(networkPolicyPeerSchema).optional(),
  ports: z.array(networkPolicyPortSchema).optional(),
});

const egressRuleSchema = z.strictObject({
  to: z.array(networkPolicyPeerSchema).optional(),
  ports: z.array(networkPolicyPortSchema).optional(),
});

export const networkPolicySchema = z.strictObject({
  apiVersion: z.literal('networking.k8s.io/v1'),
  kind: z.literal('NetworkPolicy'),
  metadata: policyMetaSchema,
  spec: z
    .strictObject({
      // Non-pointer in the Go type: an absent podSelector is the empty selector (all pods).
      podSelector: labelSelectorSchema.optional(),
      policyTypes: z.array(z.enum(['Ingress', 'Egress'])).optional(),
      ingress: z.array(ingressRuleSchema).optional(),
      egress: z.array(egressRuleSchema).optional(),
    })
    .superRefine((spec, ctx) => {
      const types = spec.policyTypes ?? [];
      if (new Set(types).size !== types.length) fail(ctx, 'invalid-policy-types', 'policyTypes must not contain duplicates', ['policyTypes']);
    }),
  // networking/v1 once had a status stanza; accept and ignore it.
  status: z.unknown().optional(),
});
export type RawNetworkPolicy = z.infer<typeof networkPolicySchema>;
export type RawNetworkPolicyPeer = z.infer<typeof networkPolicyPeerSchema>;
export type RawNetworkPolicyPort = z.infer<typeof networkPolicyPortSchema>;

// ---------------------------------------------- AdminNetworkPolicy / Baseline (v1alpha1)

function exactlyOne<T extends object>(what: string, fields: readonly (keyof T & string)[]) {
  return (value: T, ctx: Ctx): void => {
    const set = fields.filter((f) => value[f] !== undefined);
    if (set.length !== 1) {
      const code = `invalid-${what}`;
      const list = fields.join(', ');
      fail(
        ctx,
        code,
        set.length === 0
          ? `${what} must set exactly one of ${list}; none is set`
          : `${what} must set exactly one of ${list}; found ${set.join(' and ')}`,
      );
    }
  };
}

/**
 * Both selectors are required by the API; an omitted one is read as the empty selector (all
 * namespaces, all pods), as np-guard reads it, with a warning (see normalize.ts).
 */
const namespacedPodSchema = z.strictObject({
  namespaceSelector: labelSelectorSchema.optional(),
  podSelector: labelSelectorSchema.optional(),
});

const adminSubjectSchema = z
  .strictObject({ namespaces: labelSelectorSchema.optional(), pods: namespacedPodSchema.optional() })
  .superRefine(exactlyOne('subject', ['namespaces', 'pods']));

const adminIngressPeerSchema = z
  .strictObject({ namespaces: labelSelectorSchema.optional(), pods: namespacedPodSchema.optional() })
  .superRefine(exactlyOne('peer', ['namespaces', 'pods']));

/**
 * ANP `networks` entries: "CIDR must be ... with no host bits set" (CEL `cidr(self) ==
 * cidr(self).masked()`). A CIDR with host bits is read as its masked network with a warning
 * (see normalize.ts); one that does not parse is an error.
 */
const adminNetworksSchema = z
  .array(z.string())
  .min(1)
  .max(25)
  .superRefine((nets, ctx) => {
    nets.forEach((text, i) => {
      const c = parseCIDR(text);
      if (!c) fail(ctx, 'invalid-cidr', `invalid CIDR "${text}"`, [i]);
    });
  });

const adminEgressPeerSchema = z
  .strictObject({
    namespaces: labelSelectorSchema.optional(),
    pods: namespacedPodSchema.optional(),
    nodes: labelSelectorSchema.optional(),
    networks: adminNetworksSchema.optional(),
  })
  .superRefine(exactlyOne('peer', ['namespaces', 'pods', 'nodes', 'networks']));

const adminPortNumberSchema = z.strictObject({ protocol: protocolSchema.optional(), port: z.number().int() }).superRefine((p, ctx) => {
  const err = checkPortNumber(p.port);
  if (err) fail(ctx, 'invalid-port', err, ['port']);
});

const adminPortRangeSchema = z
  .strictObject({ protocol: protocolSchema.optional(), start: z.number().int(), end: z.number().int() })
  .superRefine((r, ctx) => {
    const startErr = checkPortNumber(r.start);
    const endErr = checkPortNumber(r.end);
    if (startErr) fail(ctx, 'invalid-port', startErr, ['start']);
    if (endErr) fail(ctx, 'invalid-port', endErr, ['end']);
    // PortRange CEL rule: "Start port must be less than End port".
    if (!startErr && !endErr && r.start >= r.end) fail(ctx, 'invalid-port-range', `start ${r.start} must be less than end ${r.end}`, ['end']);
  });

const adminPortSchema = z
  .strictObject({
    portNumber: adminPortNumberSchema.optional(),
    namedPort: z.string().optional(),
    portRange: adminPortRangeSchema.optional(),
  })
  .superRefine((p, ctx) => {
    exactlyOne<typeof p>('port', ['portNumber', 'namedPort', 'portRange'])(p, ctx);
    if (p.namedPort !== undefined) {
      const err = checkPortName(p.namedPort);
      if (err) fail(ctx, 'invalid-port-name', err, ['namedPort']);
    }
  });
export type RawAdminPort = z.infer<typeof adminPortSchema>;

const ANP_ACTIONS = ['Allow', 'Deny', 'Pass'] as const;
const BANP_ACTIONS = ['Allow', 'Deny'] as const;

const anpIngressRule = z.strictObject({
  name: z.string().max(100).optional(),
  action: z.enum(ANP_ACTIONS),
  from: z.array(adminIngressPeerSchema).min(1).max(100),
  ports: z.array(adminPortSchema).min(1).max(100).optional(),
});
const anpEgressRule = z.strictObject({
  name: z.string().max(100).optional(),
  action: z.enum(ANP_ACTIONS),
  to: z.array(adminEgressPeerSchema).min(1).max(100),
  ports: z.array(adminPortSchema).min(1).max(100).optional(),
});
const banpIngressRule = anpIngressRule.extend({ action: z.enum(BANP_ACTIONS) });
const banpEgressRule = anpEgressRule.extend({ action: z.enum(BANP_ACTIONS) });

export const adminNetworkPolicySchema = z.strictObject({
  apiVersion: z.literal('policy.networking.k8s.io/v1alpha1'),
  kind: z.literal('AdminNetworkPolicy'),
  metadata: policyMetaSchema,
  spec: z.strictObject({
    priority: z
      .number()
      .int()
      .superRefine((p, ctx) => {
        // "Priority is a value from 0 to 1000. Rules with lower priority values have higher precedence."
        if (p < 0 || p > 1000) fail(ctx, 'invalid-priority', `priority ${p} is out of range (must be 0-1000)`);
      }),
    subject: adminSubjectSchema,
    ingress: z.array(anpIngressRule).max(100).optional(),
    egress: z.array(anpEgressRule).max(100).optional(),
  }),
  status: z.unknown().optional(),
});
export type RawAdminNetworkPolicy = z.infer<typeof adminNetworkPolicySchema>;

export const baselineAdminNetworkPolicySchema = z.strictObject({
  apiVersion: z.literal('policy.networking.k8s.io/v1alpha1'),
  kind: z.literal('BaselineAdminNetworkPolicy'),
  metadata: policyMetaSchema.superRefine((meta, ctx) => {
    // BANP is a singleton: "only one object of this kind, named default, may exist".
    if (meta.name !== 'default') fail(ctx, 'invalid-name', `BaselineAdminNetworkPolicy must be named "default", got "${meta.name}"`, ['name']);
  }),
  spec: z.strictObject({
    subject: adminSubjectSchema,
    ingress: z.array(banpIngressRule).max(100).optional(),
    egress: z.array(banpEgressRule).max(100).optional(),
  }),
  status: z.unknown().optional(),
});
export type RawBaselineAdminNetworkPolicy = z.infer<typeof baselineAdminNetworkPolicySchema>;
export type RawAdminIngressPeer = z.infer<typeof adminIngressPeerSchema>;
export type RawAdminEgressPeer = z.infer<typeof adminEgressPeerSchema>;

// ------------------------------------------------------------ workloads (lenient)

const containerPortSchema = z.object({
  name: z
    .string()
    .superRefine((n, ctx) => {
      const err = checkPortName(n);
      if (err) fail(ctx, 'invalid-port-name', err);
    })
    .optional(),
  // Required by the API; an entry without it declares nothing and is skipped with a warning.
  containerPort: z
    .number()
    .int()
    .superRefine((p, ctx) => {
      const err = checkPortNumber(p);
      if (err) fail(ctx, 'invalid-port', err);
    })
    .optional(),
  protocol: protocolSchema.optional(),
});

const containerSchema = z.object({ name: z.string().optional(), ports: z.array(containerPortSchema).optional() });

const podSpecSchema = z.object({
  containers: z.array(containerSchema).optional(),
  hostNetwork: z.boolean().optional(),
  nodeName: z.string().optional(),
});
export type RawPodSpec = z.infer<typeof podSpecSchema>;

const podTemplateSchema = z.object({
  metadata: z.object({ labels: labelsSchema.optional() }).optional(),
  spec: podSpecSchema.optional(),
});
export type RawPodTemplate = z.infer<typeof podTemplateSchema>;

const replicasSchema = z.number().int().min(0);

const ipSchema = z.string().superRefine((ip, ctx) => {
  if (!parseIP(ip)) fail(ctx, 'invalid-ip', `invalid IP address "${ip}"`);
});

export const podSchema = z.object({
  metadata: objectMetaSchema,
  spec: podSpecSchema.optional(),
  status: z.object({ podIP: ipSchema.optional() }).optional(),
});

/** Deployment, ReplicaSet, StatefulSet, DaemonSet, ReplicationController. */
export const replicatedSchema = z.object({
  metadata: objectMetaSchema,
  spec: z.object({ replicas: replicasSchema.optional(), template: podTemplateSchema }),
});

export const jobSchema = z.object({
  metadata: objectMetaSchema,
  spec: z.object({ parallelism: replicasSchema.optional(), template: podTemplateSchema }),
});

export const cronJobSchema = z.object({
  metadata: objectMetaSchema,
  spec: z.object({ jobTemplate: z.object({ spec: z.object({ template: podTemplateSchema }) }) }),
});

// ------------------------------------------------------- Namespace, Node, Service

export const namespaceSchema = z.object({ metadata: objectMetaSchema });

export const nodeSchema = z.object({
  metadata: objectMetaSchema,
  status: z
    .object({ addresses: z.array(z.object({ type: z.string(), address: z.string() })).optional() })
    .optional(),
});

const servicePortSchema = z.object({
  name: z.string().optional(),
  port: z.number().int().superRefine((p, ctx) => {
    const err = checkPortNumber(p);
    if (err) fail(ctx, 'invalid-port', err);
  }),
  targetPort: portNumberOrName.optional(),
  protocol: protocolSchema.optional(),
  nodePort: z.number().int().optional(),
});

export const serviceSchema = z.object({
  metadata: objectMetaSchema,
  spec: z
    .object({
      selector: labelsSchema.optional(),
      ports: z.array(servicePortSchema).optional(),
      clusterIP: z.string().optional(),
      type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).optional(),
      sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
      sessionAffinityConfig: z
        .looseObject({
          clientIP: z
            // ServiceSpec: "timeoutSeconds ... must be >0 && <=86400 (for 1 day)".
            .looseObject({ timeoutSeconds: z.number().int().min(1).max(86400).optional() })
            .optional(),
        })
        .optional(),
      internalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
      externalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
      // Read only to judge externalTrafficPolicy (weir serves no external IPs).
      externalIPs: z.array(z.string()).optional(),
    })
    .superRefine((spec, ctx) => {
      // The API server's validateServiceExternalTrafficPolicy: the field belongs to Services
      // reachable from outside (NodePort, LoadBalancer, or with external IPs).
      const type = spec.type ?? 'ClusterIP';
      const external = type === 'NodePort' || type === 'LoadBalancer' || (type === 'ClusterIP' && (spec.externalIPs?.length ?? 0) > 0);
      if (spec.externalTrafficPolicy !== undefined && !external) {
        fail(ctx, 'invalid-external-traffic-policy', `Invalid value: "${spec.externalTrafficPolicy}": may only be set for externally-accessible services (type NodePort or LoadBalancer, or with externalIPs; this one is ${type})`, ['externalTrafficPolicy']);
      }
    })
    .optional(),
});

// ------------------------------------------------------- KubeVirt (kubevirt.io/v1)

/** `spec.domain.devices.interfaces[].ports`: the ports a VM declares (masquerade binding). */
const vmInterfacePortSchema = z.object({
  name: z.string().optional(),
  port: z.number().int().superRefine((p, ctx) => {
    const err = checkPortNumber(p);
    if (err) fail(ctx, 'invalid-port', err);
  }),
  protocol: protocolSchema.optional(),
});

export const vmiSpecSchema = z.object({
  domain: z
    .object({
      devices: z.object({ interfaces: z.array(z.object({ ports: z.array(vmInterfacePortSchema).optional() })).optional() }).optional(),
    })
    .optional(),
});
export type RawVmiSpec = z.infer<typeof vmiSpecSchema>;

export const virtualMachineSchema = z.object({
  metadata: objectMetaSchema,
  spec: z.object({
    template: z.object({ metadata: z.object({ labels: labelsSchema.optional() }).optional(), spec: vmiSpecSchema.optional() }),
  }),
});

export const virtualMachineInstanceSchema = z.object({
  metadata: objectMetaSchema,
  spec: vmiSpecSchema.optional(),
  status: z
    .object({
      nodeName: z.string().optional(),
      interfaces: z.array(z.object({ ipAddress: ipSchema.optional() })).optional(),
    })
    .optional(),
});

// ------------------------------------------------------ EndpointSlice (discovery.k8s.io/v1)

const DNS1123_LABEL_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * What ValidateEndpointIP refuses in an endpoint address: "may not be unspecified, loopback,
 * link-local or link-local multicast" (a proxy would DNAT to the node itself or nowhere).
 */
function specialAddress(family: 4 | 6, v: bigint): string | undefined {
  if (family === 4) {
    if (v === 0n) return 'the unspecified address';
    if (v >> 24n === 127n) return 'a loopback address (127.0.0.0/8)';
    if (v >> 16n === 0xa9fen) return 'a link-local address (169.254.0.0/16)';
    if (v >> 8n === 0xe00000n) return 'a link-local multicast address (224.0.0.0/24)';
    return undefined;
  }
  if (v === 0n) return 'the unspecified address';
  if (v === 1n) return 'the loopback address';
  if (v >> 118n === 0x3fan) return 'a link-local address (fe80::/10)';
  if (v >> 112n === 0xff02n) return 'a link-local multicast address (ff02::/16)';
  return undefined;
}

const endpointPortSchema = z.object({
  // EndpointPort.name: "Name must either be an empty string or pass DNS_LABEL validation".
  name: z
    .string()
    .superRefine((n, ctx) => {
      if (n !== '' && (n.length > 63 || !DNS1123_LABEL_RE.test(n))) fail(ctx, 'invalid-port', `invalid port name "${n}": must be empty or a lowercase RFC 1123 label (a-z, 0-9, '-', at most 63 characters)`);
    })
    .optional(),
  // "If this is not specified, ports are not restricted and must be interpreted in the context
  // of the specific consumer": kept absent here, and ignored by proxies (kube-proxy skips it).
  port: z
    .number()
    .int()
    .superRefine((p, ctx) => {
      const err = checkPortNumber(p);
      if (err) fail(ctx, 'invalid-port', err);
    })
    .optional(),
  protocol: protocolSchema.optional(),
  appProtocol: z.string().optional(),
});

const endpointSchema = z.object({
  // "This must contain at least one address but no more than 100."
  addresses: z.array(z.string()).min(1).max(100),
  conditions: z.object({ ready: z.boolean().optional(), serving: z.boolean().optional(), terminating: z.boolean().optional() }).optional(),
  hostname: z.string().optional(),
  nodeName: z.string().min(1).optional(),
  zone: z.string().min(1).optional(),
  targetRef: z.object({ kind: z.string().optional(), name: z.string().optional(), namespace: z.string().optional() }).optional(),
});

const endpointSliceObjectSchema = z
  .object({
    metadata: objectMetaSchema,
    addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
    // `endpoints` is required in the API but `kubectl get -o yaml` writes an empty list as null.
    endpoints: z.array(endpointSchema).max(1000).optional(),
    ports: z.array(endpointPortSchema).max(100).optional(),
  })
  .superRefine((s, ctx) => {
    // "All ports in an EndpointSlice must have a unique name" (with their protocol, as the
    // API server checks the pair).
    const seen = new Set<string>();
    (s.ports ?? []).forEach((p, i) => {
      const key = `${p.name ?? ''}/${p.protocol ?? 'TCP'}`;
      if (seen.has(key)) fail(ctx, 'invalid-port', `port name "${p.name ?? ''}" is used twice in this slice`, ['ports', i, 'name']);
      seen.add(key);
    });
    // "All addresses in this slice must be the same type", the one addressType says.
    (s.endpoints ?? []).forEach((e, i) => {
      e.addresses.forEach((a, j) => {
        const path = ['endpoints', i, 'addresses', j];
        if (s.addressType === 'FQDN') {
          if (a.length > 253 || !DNS1123_SUBDOMAIN_RE.test(a)) fail(ctx, 'invalid-address', `"${a}" is not a lowercase DNS name (addressType FQDN)`, path);
          return;
        }
        const ip = parseIP(a);
        const want = s.addressType === 'IPv4' ? 4 : 6;
        if (ip === undefined || ip.family !== want) {
          fail(ctx, 'invalid-address', `"${a}" is not an ${s.addressType} address (addressType ${s.addressType})`, path);
          return;
        }
        const special = specialAddress(ip.family, ip.value);
        if (special !== undefined) fail(ctx, 'invalid-address', `"${a}" is ${special}, which the API server refuses as an endpoint`, path);
      });
    });
  });
/**
 * The API serializes nil lists and pointers of a slice as null (`endpoints: null` for a slice
 * without endpoints, as the Kubernetes source receives it): Go's meaning, absent, first.
 */
export const endpointSliceSchema = z.preprocess(dropNulls, endpointSliceObjectSchema);
export type RawEndpointSlice = z.infer<typeof endpointSliceObjectSchema>;
