// The files an agent writes for other processes (`weir lab` and its supervisor, the visibility
// server, tests): one schema each, imported by the writer (the agent) and every reader, so a
// field cannot be written under one name and read under another.
//
//   <dir>/agent-<node>.json   AgentStatus, rewritten (atomically) after every sync
//   <dir>/reasons.json        the reasons table (src/render/reasons.ts), rewritten when it changes

import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export { reasonsFileSchema, type ReasonsTable } from '../render/reasons.js';

export const REASONS_FILE = 'reasons.json';
export const statusFile = (node: string): string => `agent-${node}.json`;

export const agentStatusSchema = z.object({
  node: z.string(),
  pid: z.number().int(),
  /** The agent's own sync counter. */
  generation: z.number().int(),
  /**
   * The desired generation (`<lab dir>/desired/.generation`, written by `weir lab apply`) read
   * before the manifests this sync applied: `lab apply` knows its change is enforced once
   * every agent reports at least its generation.
   */
  desiredGeneration: z.number().int().optional(),
  lastApplyOk: z.boolean(),
  error: z.string().optional(),
  updatedAt: z.string(),
  mode: z.enum(['full', 'partial', 'noop']),
  renderMs: z.number(),
  applyMs: z.number(),
  rules: z.number().int(),
  chains: z.number().int(),
  sets: z.number().int(),
  setElements: z.number().int(),
  counters: z.number().int(),
  localPods: z.number().int(),
  /** Diagnostics of the desired manifests (errors drop only the offending objects). */
  diagnostics: z.number().int(),
  diagnosticErrors: z.array(z.string()),
  conntrackDeleted: z.number().int(),
  /** How the last change reached the kernel: one `nft -f`, or one netlink batch of set elements. */
  via: z.enum(['nft', 'netlink']).optional(),
  /** The last change was rendered in full (true) or patched from element changes alone (false). */
  rendered: z.boolean().optional(),
  /**
   * How the last change was computed: `elements` (set and map elements patched), `chains` (the
   * chains of this node's identities rendered over the cluster-wide sets as they were,
   * patched: a local identity came or went, a pod or a policy changed), `full` (every set
   * filled from every pod: the first sync, namespace or node changes, after a failure).
   */
  change: z.enum(['elements', 'chains', 'full']).optional(),
  /** Why the netlink batch did not apply it, when `nft -f` then did (or failed too). */
  fallback: z.string().optional(),
  /**
   * The identities of this node's pods, with the engine's id: the same id `lab status` and
   * the flow records show for the group (ids are derived from the identity, src/policy/cache.ts).
   */
  identities: z
    .array(z.object({ id: z.number().int(), namespace: z.string(), labels: z.record(z.string(), z.string()), pods: z.number().int() }))
    .optional(),
});

/** agent-<node>.json */
export type AgentStatus = Readonly<z.infer<typeof agentStatusSchema>>;

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(value, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, path);
}

export function writeAgentStatus(dir: string, status: AgentStatus): Promise<void> {
  return writeJsonAtomic(join(dir, statusFile(status.node)), agentStatusSchema.parse(status));
}

/**
 * An agent's status file, validated: undefined when absent, half-written or not an agent status
 * (a reader treats all three as "no status yet").
 */
export async function readAgentStatus(dir: string, node: string): Promise<AgentStatus | undefined> {
  const text = await readFile(join(dir, statusFile(node)), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const parsed = agentStatusSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
