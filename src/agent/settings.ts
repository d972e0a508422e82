// The agent's settings file (`weir agent --config /etc/weir/settings.yaml`, the `weir-config`
// ConfigMap of deploy/base/config.yaml). Flags given on the command line win over the file.
// Keys other parts of weir read from the same file (`server`, where flows are shipped) are
// allowed and left alone here.

import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';

export const agentSettingsSchema = z.looseObject({
  /** Pods the agent does not know (not synced yet) fail closed; false lets them pass. */
  failClosedUntilSynced: z.boolean().optional(),
  /** Local port of /readyz, /livez, /metrics, /status (the DaemonSet's probes). */
  healthPort: z.number().int().min(0).max(65535).optional(),
  healthHost: z.string().min(1).optional(),
  /** A watch that sends nothing (no event, no bookmark) for this long is re-listed. */
  watchdogSeconds: z.number().min(1).optional(),
  /** The node's pod ranges, when its Node object has no spec.podCIDRs (Calico IPAM). */
  podCIDRs: z.array(z.string()).optional(),
  server: z.string().optional(),
  /** Program Service NAT in place of kube-proxy (`weir agent --services`). */
  services: z.boolean().optional(),
});

export type AgentSettings = z.infer<typeof agentSettingsSchema>;

/** Reads and checks the file; a bad file is an error naming the file and the field. */
export async function readAgentSettings(file: string): Promise<AgentSettings> {
  const text = await readFile(file, 'utf8').catch((e: unknown) => {
    throw new Error(`${file}: cannot read the settings: ${(e as Error).message}`, { cause: e });
  });
  let value: unknown;
  try {
    value = parse(text) ?? {};
  } catch (e) {
    throw new Error(`${file}: not YAML: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
  const r = agentSettingsSchema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`${file}: ${i.path.join('.') || '(top level)'}: ${i.message}`);
  }
  return r.data;
}
