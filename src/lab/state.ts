// The lab state file: the one place where the lab, the CLI and the nft agent meet.
//
// The schema is the single source of truth: the type is derived from it, and the file is
// validated when read, so a hand-edited or stale file gives a clear error instead of a
// half-torn-down lab. It is written atomically (temp file + rename) under a lock file so
// `weir lab apply` and the agent never see half a file.

import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';

const labels = z.record(z.string(), z.string());
const portSchema = z.object({
  name: z.string().optional(),
  port: z.number().int().min(1).max(65535),
  protocol: z.enum(['TCP', 'UDP', 'SCTP']),
});

export const labNodeSchema = z.object({
  name: z.string(),
  index: z.number().int().min(0),
  labels,
  /** Network namespace of the node: where the agent runs `nft -f -` and `conntrack`. */
  netns: z.string(),
  /** Node address on the underlay (the "host IP"). */
  underlayIp: z.string(),
  underlayDev: z.string(),
  /** VXLAN device and its address (the `.0` of the node's pod CIDR, flannel style). */
  vxlanDev: z.string(),
  vtepIp: z.string(),
  vtepMac: z.string(),
  /** Pool the node's pods are allocated from. */
  podCidr: z.string(),
});

export const labPodSchema = z.object({
  /** `namespace/name`. */
  key: z.string(),
  namespace: z.string(),
  name: z.string(),
  labels,
  workload: z.string(),
  ip: z.string(),
  /** Name of the lab node the pod runs on. */
  node: z.string(),
  netns: z.string(),
  /** Pod-side end of the veth inside `netns`. */
  dev: z.string(),
  /** Node-side end of the veth inside the node's netns (traffic to the pod leaves here). */
  hostVeth: z.string(),
  /** Declared container ports (SCTP included; see `served`). */
  ports: z.array(portSchema),
  /** Ports the lab's server actually listens on (TCP and UDP; SCTP is skipped). */
  served: z.array(portSchema),
  /** PID of the pod's server process, while the lab is up and the pod serves something. */
  serverPid: z.number().int().optional(),
});

export const labExternalSchema = z.object({
  name: z.literal('external'),
  netns: z.string(),
  ip: z.string(),
  cidr: z.string(),
  /** Address of the node-side end of the external host's link. */
  gateway: z.string(),
  /** Node the external host hangs off, and the node-side link name. */
  node: z.string(),
  hostVeth: z.string(),
  served: z.array(portSchema),
  serverPid: z.number().int().optional(),
});

export const labStateSchema = z.object({
  version: z.literal(1),
  prefix: z.string(),
  dir: z.string(),
  status: z.enum(['starting', 'up', 'down']),
  updatedAt: z.string(),
  network: z.object({
    clusterCidr: z.string(),
    underlayCidr: z.string(),
    externalCidr: z.string(),
    vni: z.number().int(),
    vxlanPort: z.number().int(),
    mtu: z.number().int(),
    podGateway: z.string(),
  }),
  /** Namespace-keyed pools (`--namespace-pool ns=cidr`), empty when pools are per node. */
  namespacePools: z.record(z.string(), z.string()),
  underlay: z.object({ netns: z.string(), bridge: z.string() }),
  namespaces: z.array(z.object({ name: z.string(), labels })),
  nodes: z.array(labNodeSchema),
  pods: z.array(labPodSchema),
  external: labExternalSchema,
});

export type LabState = z.infer<typeof labStateSchema>;
export type LabNode = z.infer<typeof labNodeSchema>;
export type LabPod = z.infer<typeof labPodSchema>;
export type LabExternal = z.infer<typeof labExternalSchema>;
export type LabPort = z.infer<typeof portSchema>;

export const STATE_FILE = 'state.json';

export function statePath(dir: string): string {
  return join(dir, STATE_FILE);
}

/** Reads the state file; undefined when there is none. Throws a one-line error when it is invalid. */
export async function readState(dir: string): Promise<LabState | undefined> {
  let text: string;
  try {
    text = await readFile(statePath(dir), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new Error(`lab state file ${statePath(dir)} is not valid JSON; remove it or run \`weir lab down --force\``, { cause: error });
  }
  const parsed = labStateSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue ? `${issue.path.join('.')}: ${issue.message}` : 'invalid';
    throw new Error(`lab state file ${statePath(dir)} is invalid (${where}); remove it or run \`weir lab down --force\``);
  }
  return parsed.data;
}

export async function writeState(state: LabState): Promise<void> {
  await mkdir(state.dir, { recursive: true, mode: 0o755 });
  const next: LabState = { ...state, updatedAt: new Date().toISOString() };
  const tmp = `${statePath(state.dir)}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o644 });
  await rename(tmp, statePath(state.dir));
}

const LOCK_FILE = 'state.lock';
const LOCK_TRIES = 100;
const LOCK_WAIT_MS = 50;

/** A lock left by a process that no longer exists (crash, kill -9) is stale. */
async function lockIsStale(lock: string): Promise<boolean> {
  const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Runs `fn` holding the lab's lock file (bounded wait, ~5 s). */
export async function withStateLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  await mkdir(dir, { recursive: true, mode: 0o755 });
  const lock = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(lock, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (await lockIsStale(lock)) {
        await rm(lock, { force: true });
        continue;
      }
      if (attempt >= LOCK_TRIES) {
        throw new Error(`lab directory ${dir} is locked by another weir process (remove ${lock} if none is running)`, { cause: err });
      }
      await sleep(LOCK_WAIT_MS);
    }
  }
  try {
    return await fn();
  } finally {
    await rm(lock, { force: true });
  }
}
