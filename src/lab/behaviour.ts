// Slow and flaky pods without netem (this kernel has none): each pod server reads a small
// control file and delays, fails or stalls its replies accordingly (src/lab/server.mjs).
// Changing the file changes the pod live, within 100 ms; removing it restores normal.

import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';

export const behaviourSchema = z.strictObject({
  /** Every reply waits this long. */
  delayMs: z.number().min(0).max(600_000).default(0),
  /** Share of connections reset at once (TCP RST) and of datagrams left unanswered. */
  errorRate: z.number().min(0).max(1).default(0),
  /** At most this many TCP replies in service at once; the rest queue (limited capacity). */
  concurrency: z.number().int().min(1).max(100_000).optional(),
  /** Replies are held during the first `forMs` of every `everyMs`. */
  stall: z.strictObject({ everyMs: z.number().min(1).max(3_600_000), forMs: z.number().min(0).max(3_600_000) }).optional(),
});

export type Behaviour = z.input<typeof behaviourSchema>;

/** Where the servers of a lab directory look for their control files. */
export function controlDir(labDir: string): string {
  return join(labDir, 'control');
}

export function controlFile(labDir: string, netns: string): string {
  return join(controlDir(labDir), `${netns}.json`);
}

/**
 * Sets a pod's behaviour (by its network namespace), atomically so a server never reads half
 * a file. Throws with the field named when the behaviour is invalid.
 */
export async function setBehaviour(labDir: string, netns: string, behaviour: Behaviour): Promise<void> {
  const parsed = behaviourSchema.safeParse(behaviour);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`invalid pod behaviour for ${netns}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  await mkdir(controlDir(labDir), { recursive: true });
  const file = controlFile(labDir, netns);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${JSON.stringify(parsed.data)}\n`);
  await rename(tmp, file);
}

/** Back to normal: no delay, no errors. */
export async function clearBehaviour(labDir: string, netns: string): Promise<void> {
  await rm(controlFile(labDir, netns), { force: true });
}
