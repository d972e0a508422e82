// Agent processes for the lab: one `weir agent --lab-dir DIR --node NAME` per emulated node,
// started by `weir lab up` and stopped by `weir lab down`, the way a DaemonSet runs one agent
// per node. The agents outlive the command that started them, so everything needed to find
// them again lives in the lab directory:
//
//   <dir>/agent-<node>.pid    written here, after the spawn (the PID is the agent's own)
//   <dir>/agent-<node>.json   written by the agent after every sync (src/agent/status.ts)
//   <dir>/logs/agent-<node>.log   the agent's stdout and stderr
//   <dir>/desired/            the manifests the agents enforce (desired.ts; `weir lab apply` keeps it)
//
// The agent ignores changes to `agent-*` files, so pid files never trigger a re-sync.
// Agents run in the root namespace and enter a node's namespace only to run `nft`, so the
// lab's teardown (which kills whatever runs inside lab namespaces) never kills them: they are
// stopped here, by recorded PID only, after checking the PID still is that node's agent.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { readAgentStatus, statusFile, type AgentStatus } from '../agent/status.js';
import { isAlive, stopPid } from './processes.js';
import type { LabNode, LabState } from './state.js';

// The desired folder and its generation belong to the desired-state store (desired.ts).
export { DESIRED_DIR, GENERATION_FILE, desiredDir, readGeneration, bumpGeneration } from './desired.js';

export const agentPidFile = (dir: string, node: string): string => join(dir, `agent-${node}.pid`);
export const agentStatusFile = (dir: string, node: string): string => join(dir, statusFile(node));
export const agentLogFile = (dir: string, node: string): string => join(dir, 'logs', `agent-${node}.log`);

/** The agent's status file, as the agent writes it (one schema: src/agent/status.ts). */
export type AgentStatusView = AgentStatus;

export function readAgentStatusFile(dir: string, node: string): Promise<AgentStatusView | undefined> {
  return readAgentStatus(dir, node);
}

/** The argv that runs the weir CLI: this node binary and bin/weir.js (from src/ or dist/src/). */
export function weirCommand(): string[] {
  const candidates = [new URL('../../bin/weir.js', import.meta.url), new URL('../../../bin/weir.js', import.meta.url)];
  for (const url of candidates) {
    const path = fileURLToPath(url);
    if (existsSync(path)) return [process.execPath, path];
  }
  throw new Error(`cannot find bin/weir.js next to ${fileURLToPath(import.meta.url)} to start the agents`);
}

export interface SupervisorOptions {
  /** argv prefix that runs the weir CLI (default: `weirCommand()`). */
  readonly command?: readonly string[];
  /** How long an agent may take to report its first successful apply (default 30 s). */
  readonly readyTimeoutMs?: number;
  /** Passed as `--strict` (flush conntrack entries a narrowed policy no longer allows). */
  readonly strict?: boolean;
  /**
   * `lab up --source kube`: the agent watches the lab's API server (src/lab/kube.ts) instead of
   * the lab's files, in policy-only mode, with the node's pod CIDR and its status in the lab dir.
   */
  readonly kube?: { readonly kubeconfig: string; readonly netns: string; readonly podCidr: string; readonly watchdogSeconds?: number };
  /** More agent flags (flow shipping: `--server URL --token-file F`). */
  readonly agentArgs?: readonly string[];
}

async function readPid(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  const pid = Number(text?.trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** True when `pid` runs `weir agent --lab-dir <dir> --node <node>` (guards against a recycled PID). */
export async function isAgentOf(pid: number, dir: string, node: string): Promise<boolean> {
  const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    .then((t) => t.split('\0'))
    .catch(() => undefined);
  if (!argv) return false;
  const after = (flag: string): string | undefined => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  return argv.includes('agent') && (after('--lab-dir') === dir || after('--status-dir') === dir) && after('--node') === node;
}

async function logTail(dir: string, node: string): Promise<string> {
  const text = await readFile(agentLogFile(dir, node), 'utf8').catch(() => '');
  const lines = text.trim().split('\n').filter(Boolean).slice(-3);
  return lines.length > 0 ? `: ${lines.join('; ')}` : '';
}

/**
 * Starts the agent of `node` (detached, pid file, log file) and resolves once it reports its
 * first successful apply; rejects (after stopping it) when it fails, exits or times out.
 */
export async function startAgent(dir: string, node: string, opts: SupervisorOptions = {}): Promise<number> {
  const running = await readPid(agentPidFile(dir, node));
  if (running !== undefined && (await isAlive(running)) && (await isAgentOf(running, dir, node))) {
    throw new Error(`the agent of ${node} is already running (pid ${running}); run \`weir lab down\` first`);
  }
  await mkdir(join(dir, 'logs'), { recursive: true });
  await rm(agentStatusFile(dir, node), { force: true });
  const [file, ...prefix] = opts.command ?? weirCommand();
  if (file === undefined) throw new Error('empty agent command');
  const log = await open(agentLogFile(dir, node), 'a');
  let pid: number | undefined;
  let exited: string | undefined;
  try {
    const k = opts.kube;
    const source = k
      ? ['--kubeconfig', k.kubeconfig, '--status-dir', dir, '--netns', k.netns, '--pod-cidr', k.podCidr, '--health-address', '127.0.0.1:0', ...(k.watchdogSeconds ? ['--watchdog', String(k.watchdogSeconds)] : [])]
      : ['--lab-dir', dir];
    const args = [...prefix, 'agent', ...source, '--node', node, ...(opts.strict ? ['--strict'] : []), ...(opts.agentArgs ?? [])];
    const child = spawn(file, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
    pid = child.pid;
    if (pid === undefined) throw new Error(`cannot start the agent of ${node}`);
    child.on('exit', (code, signal) => {
      exited = signal ?? `exit code ${code ?? '?'}`;
    });
    child.on('error', (error) => {
      exited = error.message;
    });
    child.unref();
    await writeFile(`${agentPidFile(dir, node)}.tmp`, `${pid}\n`);
    await rename(`${agentPidFile(dir, node)}.tmp`, agentPidFile(dir, node));
  } finally {
    await log.close();
  }
  const timeoutMs = opts.readyTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = await readAgentStatusFile(dir, node);
    if (status && status.pid === pid) {
      if (status.lastApplyOk) return pid;
      await stopAgent(dir, node);
      throw new Error(`the agent of ${node} could not apply its ruleset: ${status.error ?? 'unknown error'} (log: ${agentLogFile(dir, node)})`);
    }
    if (exited !== undefined) {
      await rm(agentPidFile(dir, node), { force: true });
      throw new Error(`the agent of ${node} stopped (${exited}) before its first apply${await logTail(dir, node)}`);
    }
    if (Date.now() > deadline) {
      await stopAgent(dir, node);
      throw new Error(`the agent of ${node} did not apply its ruleset within ${timeoutMs / 1000} s (log: ${agentLogFile(dir, node)})`);
    }
    await sleep(50);
  }
}

/** Stops the agent of `node` by its recorded PID (only if it still is that agent); returns the PID stopped. */
export async function stopAgent(dir: string, node: string): Promise<number | undefined> {
  const file = agentPidFile(dir, node);
  const pid = await readPid(file);
  let stopped: number | undefined;
  if (pid !== undefined && (await isAlive(pid)) && (await isAgentOf(pid, dir, node))) {
    await stopPid(pid, 3000);
    stopped = pid;
  }
  await rm(file, { force: true });
  return stopped;
}

/** Nodes with a pid file in `dir` (so `down` finds agents even when the state file is gone). */
async function recordedNodes(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch(() => [] as string[]);
  return names.filter((n) => n.startsWith('agent-') && n.endsWith('.pid')).map((n) => n.slice('agent-'.length, -'.pid'.length));
}

/** Stops every recorded agent of the lab in `dir`; returns the PIDs stopped. */
export async function stopAgents(dir: string): Promise<number[]> {
  const nodes = await recordedNodes(dir);
  const stopped = await Promise.all(nodes.map((n) => stopAgent(dir, n)));
  return stopped.filter((p): p is number => p !== undefined);
}

export interface AgentInfo {
  readonly node: string;
  readonly pid?: number;
  readonly running: boolean;
  readonly status?: AgentStatusView;
}

export async function agentInfo(dir: string, nodes: readonly Pick<LabNode, 'name'>[]): Promise<AgentInfo[]> {
  return Promise.all(
    nodes.map(async (n) => {
      const pid = await readPid(agentPidFile(dir, n.name));
      const running = pid !== undefined && (await isAlive(pid)) && (await isAgentOf(pid, dir, n.name));
      const status = await readAgentStatusFile(dir, n.name);
      return { node: n.name, ...(pid !== undefined ? { pid } : {}), running, ...(status ? { status } : {}) };
    }),
  );
}

export interface SettleOptions {
  /** The desired generation to wait for. */
  readonly generation: number;
  /** When the change was complete (ms since epoch): only syncs finished after it count. */
  readonly since: number;
  readonly timeoutMs?: number;
  /**
   * Without `desiredGeneration` in the status, how long the agent's sync counter must stay
   * still before the latest sync is taken as the one that saw the change. Two of the agent's
   * poll periods (200 ms) plus a margin: a change is noticed within one period, so a counter
   * still for longer means no sync is pending.
   */
  readonly quietMs?: number;
}

export interface SettledAgent {
  readonly node: string;
  /** From the end of the change to the agent's status write. */
  readonly ms: number;
  readonly status: AgentStatusView;
}

/**
 * Waits until every running agent has applied the desired state of `generation`. Exact when
 * the agent reports `desiredGeneration`; otherwise: a successful sync that finished after
 * `since`, followed by `quietMs` without another sync.
 */
export async function waitForAgents(dir: string, nodes: readonly Pick<LabNode, 'name'>[], opts: SettleOptions): Promise<SettledAgent[]> {
  const quietMs = opts.quietMs ?? 500;
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  const infos = await agentInfo(dir, nodes);
  const missing = infos.filter((a) => !a.running).map((a) => a.node);
  if (missing.length > 0) throw new Error(`no agent is running for ${missing.join(', ')}: policies are not enforced there (run \`weir lab down\` and \`weir lab up\`)`);
  const settled = new Map<string, SettledAgent>();
  const lastChange = new Map<string, { generation: number; at: number }>();
  while (settled.size < nodes.length) {
    for (const n of nodes) {
      if (settled.has(n.name)) continue;
      const status = await readAgentStatusFile(dir, n.name);
      if (!status) continue;
      const seen = lastChange.get(n.name);
      if (!seen || seen.generation !== status.generation) lastChange.set(n.name, { generation: status.generation, at: Date.now() });
      const finished = Date.parse(status.updatedAt);
      const fresh =
        status.desiredGeneration !== undefined
          ? status.desiredGeneration >= opts.generation
          : finished >= opts.since && Date.now() - (lastChange.get(n.name)?.at ?? Date.now()) >= quietMs;
      if (!fresh) continue;
      if (!status.lastApplyOk) {
        throw new Error(`the agent of ${n.name} could not apply the change: ${status.error ?? 'unknown error'}; the previous ruleset stays in force`);
      }
      settled.set(n.name, { node: n.name, ms: Math.max(0, finished - opts.since), status });
    }
    if (settled.size === nodes.length) break;
    if (Date.now() > deadline) {
      const late = nodes.filter((n) => !settled.has(n.name)).map((n) => n.name);
      throw new Error(`the agents of ${late.join(', ')} did not apply the change within ${(opts.timeoutMs ?? 15_000) / 1000} s (see ${join(dir, 'logs')})`);
    }
    await sleep(50);
  }
  return nodes.map((n) => settled.get(n.name) as SettledAgent);
}

/**
 * labUp hooks that start each node's agent as soon as the node exists — before any pod is
 * attached — and wait for its first successful apply, so no pod ever runs unprotected. The
 * agent reads the planned state (status `starting`, every pod's address already assigned).
 */
export function agentHooks(dir: string, opts: SupervisorOptions = {}): { onNodeReady: (node: LabNode, state: LabState) => Promise<void> } {
  return {
    onNodeReady: async (node) => {
      await startAgent(dir, node.name, opts);
    },
  };
}

// ------------------------------------------------------------------ the visibility server
//
// `weir lab up` also starts one `weir serve --lab-dir DIR` (flows API + dashboard) for the lab,
// detached like the agents, and `weir lab down` stops it by its recorded PID:
//
//   <dir>/serve.pid         written here, after the spawn
//   <dir>/serve.json        { pid, url, startedAt }, written once it listens
//   <dir>/logs/serve.log    its stdout and stderr
//
// It runs in the root namespace (it listens on loopback) and enters node namespaces only
// through its `conntrack`/`nft` children, which it ends itself when stopped — so it is
// stopped before the lab's namespaces are torn down.

export const servePidFile = (dir: string): string => join(dir, 'serve.pid');
export const serveInfoFile = (dir: string): string => join(dir, 'serve.json');
export const serveLogFile = (dir: string): string => join(dir, 'logs', 'serve.log');
/** The line `weir serve` prints once it listens (src/cli/serve.ts prints it). */
export const SERVE_LISTENING = 'weir serve: listening on ';

const serveInfoSchema = z.object({ pid: z.number().int(), url: z.string(), startedAt: z.string() });
export type ServeRecord = z.infer<typeof serveInfoSchema>;

export interface ServeOptions {
  readonly command?: readonly string[];
  /** Port to listen on (0: any free port; default 7680). */
  readonly port?: number;
  readonly host?: string;
  readonly alertsFile?: string;
  readonly readyTimeoutMs?: number;
}

/** True when `pid` runs `weir serve --lab-dir <dir>` (guards against a recycled PID). */
export async function isServeOf(pid: number, dir: string): Promise<boolean> {
  const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8')
    .then((t) => t.split('\0'))
    .catch(() => undefined);
  if (!argv) return false;
  const i = argv.indexOf('--lab-dir');
  return argv.includes('serve') && i >= 0 && argv[i + 1] === dir;
}

/** Starts the lab's visibility server and resolves with its record once it listens. */
export async function startServe(dir: string, opts: ServeOptions = {}): Promise<ServeRecord> {
  const running = await readPid(servePidFile(dir));
  if (running !== undefined && (await isAlive(running)) && (await isServeOf(running, dir))) {
    throw new Error(`the visibility server of this lab is already running (pid ${running}); run \`weir lab down\` first`);
  }
  await mkdir(join(dir, 'logs'), { recursive: true });
  await rm(serveInfoFile(dir), { force: true });
  const [file, ...prefix] = opts.command ?? weirCommand();
  if (file === undefined) throw new Error('empty serve command');
  const logPath = serveLogFile(dir);
  const log = await open(logPath, 'w');
  let pid: number | undefined;
  let exited: string | undefined;
  try {
    const args = [
      ...prefix,
      'serve',
      '--lab-dir',
      dir,
      '--port',
      String(opts.port ?? 7680),
      '--host',
      opts.host ?? '127.0.0.1',
      ...(opts.alertsFile !== undefined ? ['--alerts', opts.alertsFile] : []),
    ];
    const child = spawn(file, args, { detached: true, stdio: ['ignore', log.fd, log.fd] });
    pid = child.pid;
    if (pid === undefined) throw new Error('cannot start the visibility server');
    child.on('exit', (code, signal) => {
      exited = signal ?? `exit code ${code ?? '?'}`;
    });
    child.on('error', (error) => {
      exited = error.message;
    });
    child.unref();
    await writeFile(`${servePidFile(dir)}.tmp`, `${pid}\n`);
    await rename(`${servePidFile(dir)}.tmp`, servePidFile(dir));
  } finally {
    await log.close();
  }
  const timeoutMs = opts.readyTimeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = await readFile(logPath, 'utf8').catch(() => '');
    const line = text.split('\n').find((l) => l.startsWith(SERVE_LISTENING));
    if (line) {
      const url = line.slice(SERVE_LISTENING.length).split(' ')[0] ?? '';
      const record: ServeRecord = { pid, url, startedAt: new Date().toISOString() };
      await writeFile(`${serveInfoFile(dir)}.tmp`, `${JSON.stringify(record)}\n`);
      await rename(`${serveInfoFile(dir)}.tmp`, serveInfoFile(dir));
      return record;
    }
    if (exited !== undefined) {
      await rm(servePidFile(dir), { force: true });
      const tail = text.trim().split('\n').filter(Boolean).slice(-3).join('; ');
      throw new Error(`the visibility server stopped (${exited}) before it listened${tail ? `: ${tail}` : ''}`);
    }
    if (Date.now() > deadline) {
      await stopServe(dir);
      throw new Error(`the visibility server did not listen within ${timeoutMs / 1000} s (log: ${logPath})`);
    }
    await sleep(50);
  }
}

/** Stops the lab's visibility server by its recorded PID (only if it still is that server); returns the PID stopped. */
export async function stopServe(dir: string): Promise<number | undefined> {
  const pid = await readPid(servePidFile(dir));
  let stopped: number | undefined;
  // Its conntrack children run in the lab's namespaces: give it time to end them itself.
  if (pid !== undefined && (await isAlive(pid)) && (await isServeOf(pid, dir))) {
    await stopPid(pid, 5000);
    stopped = pid;
  }
  await rm(servePidFile(dir), { force: true });
  await rm(serveInfoFile(dir), { force: true });
  return stopped;
}

export interface ServeInfo {
  readonly pid?: number;
  readonly running: boolean;
  readonly url?: string;
}

export async function serveInfo(dir: string): Promise<ServeInfo> {
  const pid = await readPid(servePidFile(dir));
  const running = pid !== undefined && (await isAlive(pid)) && (await isServeOf(pid, dir));
  const text = await readFile(serveInfoFile(dir), 'utf8').catch(() => undefined);
  let url: string | undefined;
  try {
    const parsed = text !== undefined ? serveInfoSchema.safeParse(JSON.parse(text)) : undefined;
    if (parsed?.success && parsed.data.pid === pid) url = parsed.data.url;
  } catch {
    url = undefined;
  }
  return { ...(pid !== undefined ? { pid } : {}), running, ...(url !== undefined ? { url } : {}) };
}
