// A Service port as `/api/services` serves it: the agents' view (src/agent/lb-status.ts) with
// each endpoint's pod groups added, so the dashboard can wire a Service to the groups on its
// map. Zod only (no Fastify): the dashboard imports the type.
import { z } from 'zod';
import { endpointStatusSchema, serviceViewSchema } from '../agent/lb-status.js';

/** An endpoint with the groups of its pod (what the flows of that pod are grouped by), when the server knows the pod. */
export const endpointApiSchema = endpointStatusSchema.extend({ workload: z.string().optional(), identity: z.string().optional() });
export const serviceApiSchema = serviceViewSchema.extend({ nodes: z.array(serviceViewSchema.shape.nodes.element.extend({ endpoints: z.array(endpointApiSchema) })) });
export type ServiceApiView = z.infer<typeof serviceApiSchema>;
