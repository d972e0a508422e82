// `weir lab …` and `weir agent`: the lab's faces on the command line. Thin shell over src/lab
// (namespaces, pods, probes), src/lab/supervisor.ts (one agent process per node) and
// src/lab/compare.ts (the engine's verdicts against the probe's packets).
//
// The lab keeps the manifests it enforces in `<dir>/desired/`, one file per object
// (`<Kind>_<namespace>_<name>.yaml`, cluster-scoped kinds `<Kind>_<name>.yaml`), so
// `lab apply` and `lab delete` replace or remove exactly the objects named, like
// `kubectl apply` / `kubectl delete -f`. The agents watch that folder; `.generation` is
// bumped last after every change, and the command waits until every agent has applied it.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Option, type Command } from 'commander';
import { stringify } from 'yaml';
import { comparisonJson, compareWithDesired, formatComparison, labCluster, mergeProbeCells, timedOutAllowedCells, type Comparison } from '../lab/compare.js';
import {
  CommandError,
  DEFAULT_PREFIX,
  defaultLabDir,
  formatReachability,
  labApply,
  labDown,
  labStatus,
  labUp,
  parsePortSpec,
  planLab,
  preflight,
  probe,
  readState,
  targetNetns,
  type LabState,
  type PortSpec,
} from '../lab/index.js';
import { listNetns } from '../lab/topology.js';
import {
  agentHooks,
  agentInfo,
  agentLogFile,
  bumpGeneration,
  desiredDir,
  readGeneration,
  serveInfo,
  serveLogFile,
  startServe,
  stopAgents,
  stopServe,
  waitForAgents,
  weirCommand,
  type AgentInfo,
  type SettledAgent,
} from '../lab/supervisor.js';
import { splitDocuments, isPlainObject } from '../load/documents.js';
import { buildCluster, findManifestFiles, parseManifests, type ManifestObject } from '../load/index.js';
import { emptyCluster, type Cluster } from '../model/cluster.js';
import { formatDiagnostic, hasErrors, ValidationError, type Diagnostic } from '../model/diagnostics.js';
import { PolicyEngine } from '../policy/index.js';
import { runAgent } from '../agent/index.js';
import { CliError, EXIT_FINDINGS, EXIT_INPUT, exitStatus } from './exit.js';
import { countErrors, loadInput } from './input.js';
import { writeOutput } from './output.js';

interface GlobalOptions {
  readonly quiet?: boolean;
}

interface DirOptions {
  readonly dir?: string;
  readonly prefix?: string;
}

/** `examples/demo/` of the working directory, else the one shipped with weir. */
function defaultPaths(): string[] {
  if (existsSync('examples/demo')) return ['examples/demo/'];
  for (const rel of ['../../examples/demo/', '../../../examples/demo/']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return [path];
  }
  return ['examples/demo/'];
}

/** The lab directory, absolute: agents and pid checks compare it textually. */
function labDir(opts: DirOptions): string {
  return resolve(opts.dir ?? defaultLabDir(opts.prefix ?? DEFAULT_PREFIX));
}

/**
 * The lab's own errors are plain `Error`s with a sentence meant for the user (no lab up, a
 * failed `ip` command, an agent that did not start): one line, exit 2. Anything else (a
 * TypeError, …) is a bug and goes to the top-level handler as an internal error.
 */
async function labCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof ValidationError || e instanceof CliError) throw e;
    if (e instanceof CommandError || (e instanceof Error && e.constructor === Error)) throw new CliError(e.message, EXIT_INPUT);
    throw e;
  }
}

function printDiagnostics(diags: readonly Diagnostic[], quiet: boolean): void {
  for (const d of diags) if (!quiet || d.severity === 'error') process.stderr.write(`${formatDiagnostic(d)}\n`);
}

async function requireUp(dir: string): Promise<LabState> {
  const state = await labCall(() => readState(dir));
  if (!state || state.status !== 'up') throw new CliError(`no lab is up in ${dir}: run \`weir lab up\` first (or pass --dir)`);
  return state;
}

// ------------------------------------------------------------------ the desired folder

const CLUSTER_SCOPED = new Set(['Namespace', 'Node', 'AdminNetworkPolicy', 'BaselineAdminNetworkPolicy']);

interface DesiredObject {
  /** `Kind ns/name` or `Kind name`, as diagnostics name objects. */
  readonly id: string;
  /** File name inside the desired folder. */
  readonly file: string;
  readonly text: string;
}

function safe(part: string): string {
  return part.replace(/[^A-Za-z0-9.-]/g, '-');
}

/** Every object of the manifest files under `paths`, one YAML text each (Lists expanded). */
async function readObjects(paths: readonly string[]): Promise<DesiredObject[]> {
  const { files } = await findManifestFiles(paths);
  const out = new Map<string, DesiredObject>();
  for (const file of files) {
    const { docs } = splitDocuments(await readFile(file, 'utf8'), file);
    for (const doc of docs) {
      if (!isPlainObject(doc.value)) continue;
      const kind = typeof doc.value.kind === 'string' ? doc.value.kind : '';
      const meta = isPlainObject(doc.value.metadata) ? doc.value.metadata : {};
      const name = typeof meta.name === 'string' ? meta.name : '';
      if (!kind || !name) continue; // the loader has reported it already
      const ns = CLUSTER_SCOPED.has(kind) ? undefined : typeof meta.namespace === 'string' && meta.namespace ? meta.namespace : 'default';
      const value = ns !== undefined ? { ...doc.value, metadata: { ...meta, namespace: ns } } : doc.value;
      const obj: DesiredObject = {
        id: ns !== undefined ? `${kind} ${ns}/${name}` : `${kind} ${name}`,
        file: ns !== undefined ? `${safe(kind)}_${safe(ns)}_${safe(name)}.yaml` : `${safe(kind)}_${safe(name)}.yaml`,
        text: `# ${doc.file}:${doc.line}\n${stringify(value)}`,
      };
      // The last definition wins, as with `kubectl apply` of several files.
      out.set(obj.file, obj);
    }
  }
  return [...out.values()];
}

/** The desired folder as file → text (the generation file and temp files left out). */
async function readDesired(dir: string): Promise<Map<string, string>> {
  const folder = desiredDir(dir);
  const names = await readdir(folder).catch(() => [] as string[]);
  const out = new Map<string, string>();
  for (const n of names.sort()) if (!n.startsWith('.')) out.set(n, await readFile(join(folder, n), 'utf8'));
  return out;
}

/** Loads a desired set from memory, exactly as the agents will load it from the folder. */
function buildDesired(dir: string, files: ReadonlyMap<string, string>): { cluster: Cluster; diagnostics: Diagnostic[] } {
  const objects: ManifestObject[] = [];
  const diagnostics: Diagnostic[] = [];
  for (const [name, text] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) {
    const parsed = parseManifests(text, join(desiredDir(dir), name));
    objects.push(...parsed.objects);
    diagnostics.push(...parsed.diagnostics);
  }
  const built = buildCluster(objects);
  return { cluster: built.cluster, diagnostics: [...diagnostics, ...built.diagnostics] };
}

/** The desired cluster of a running lab (empty when the lab was not started by `weir lab up`). */
async function loadDesired(dir: string): Promise<{ cluster: Cluster; present: boolean }> {
  const exists = await stat(desiredDir(dir)).then(
    () => true,
    () => false,
  );
  if (!exists) return { cluster: emptyCluster(), present: false };
  return { cluster: buildDesired(dir, await readDesired(dir)).cluster, present: true };
}

/** Brings the folder to `next`: writes new and changed files (tmp + rename), removes the rest. */
async function writeDesired(dir: string, next: ReadonlyMap<string, string>): Promise<void> {
  const folder = desiredDir(dir);
  await mkdir(folder, { recursive: true });
  const current = await readDesired(dir);
  for (const [name, text] of next) {
    if (current.get(name) === text) continue;
    const tmp = join(folder, `.${name}.${process.pid}.tmp`);
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, join(folder, name));
  }
  for (const name of current.keys()) if (!next.has(name)) await rm(join(folder, name), { force: true });
}

// ------------------------------------------------------------------ up / down

interface UpOptions extends DirOptions {
  readonly nodes?: string;
  readonly agent: boolean;
  readonly strict?: boolean;
  /** Start `weir serve` for the lab (`--no-serve` turns it off). */
  readonly serve: boolean;
  readonly servePort?: string;
  readonly alerts?: string;
}

function parseServePort(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > 65535) throw new CliError(`invalid --serve-port "${text}": expected a port number 0-65535`);
  return n;
}

function parseNodes(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`invalid --nodes "${text}": expected a whole number ≥ 1`);
  return n;
}

async function isUp(dir: string): Promise<boolean> {
  const state = await readState(dir).catch(() => undefined);
  if (!state || state.status === 'down') return false;
  const existing = await listNetns();
  return state.nodes.some((n) => existing.has(n.netns));
}

async function runUp(paths: string[], opts: UpOptions, cmd: Command): Promise<void> {
  const quiet = cmd.optsWithGlobals<GlobalOptions>().quiet === true;
  const nodes = parseNodes(opts.nodes);
  const servePort = parseServePort(opts.servePort);
  if (opts.alerts !== undefined && !existsSync(opts.alerts)) throw new CliError(`--alerts: no such file ${opts.alerts}`);
  const dir = labDir(opts);
  await preflight();
  const sources = paths.length > 0 ? paths : defaultPaths();
  const input = await loadInput(sources, { quiet });
  if (input.hasErrors) {
    const n = countErrors(input.diagnostics);
    throw new CliError(`${n} error${n === 1 ? '' : 's'} in the manifests: nothing was created (fix them, \`weir lint\` helps)`);
  }
  if (await isUp(dir)) throw new CliError(`a lab is already up in ${dir}: run \`weir lab down\` first (or \`weir lab apply\` to change it)`);
  if (opts.agent) await stopAgents(dir); // leftovers of a lab that was never taken down
  if (opts.serve) await stopServe(dir);

  const objects = await readObjects(sources);
  await writeDesired(dir, new Map(objects.map((o) => [o.file, o.text])));
  await bumpGeneration(dir);

  const started = Date.now();
  const state = await labCall(async () => {
    try {
      return await labUp(input.cluster, {
        dir,
        ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}),
        ...(nodes !== undefined ? { nodes } : {}),
        ...(opts.agent ? agentHooks(dir, { command: weirCommand(), strict: opts.strict }) : {}),
        onDiagnostics: (d) => printDiagnostics(d, quiet),
      });
    } catch (e) {
      // labUp removed its namespaces; the agents it had started are ours to stop.
      await stopAgents(dir);
      throw e;
    }
  });
  const agents = opts.agent ? await agentInfo(dir, state.nodes) : [];
  let serveLine = 'no visibility server (--no-serve): start one with `weir serve' + (opts.dir !== undefined ? ` --lab-dir ${resolve(opts.dir)}` : '') + '`';
  if (opts.serve) {
    try {
      const start = (port: number | undefined) =>
        startServe(dir, { command: weirCommand(), ...(port !== undefined ? { port } : {}), ...(opts.alerts !== undefined ? { alertsFile: resolve(opts.alerts) } : {}) });
      // The default port may be taken (another lab's server): then any free port, printed below.
      const served = await start(servePort).catch((e: unknown) => {
        if (servePort === undefined && e instanceof Error && /port is in use/.test(e.message)) return start(0);
        throw e;
      });
      serveLine = `dashboard: ${served.url}/ (weir serve pid ${served.pid}; weir flows --server ${served.url})`;
    } catch (e) {
      // The lab itself is up and enforced: say what failed, keep it, exit 1.
      process.stderr.write(`weir: error: ${e instanceof Error ? e.message : String(e)} (the lab is up; see ${serveLogFile(dir)})\n`);
      serveLine = 'no visibility server: it failed to start (see above)';
      exitStatus.raise(EXIT_FINDINGS);
    }
  }
  const lines = [
    `lab up in ${dir} (${Date.now() - started} ms): ${state.nodes.length} nodes, ${state.pods.length} pods, external host ${state.external.ip}`,
    opts.agent
      ? `agents: ${agents.map((a) => `${a.node} pid ${a.pid ?? '?'} (${a.status?.rules ?? '?'} rules)`).join(', ')}`
      : 'no agents (--no-agent): policies are NOT enforced, every pod reaches every pod',
    serveLine,
    `next: weir lab status${dirFlag(opts)} | weir lab probe${dirFlag(opts)} | weir lab down${dirFlag(opts)}`,
  ];
  await writeOutput(`${lines.join('\n')}\n`);
}

function dirFlag(opts: DirOptions): string {
  return opts.dir !== undefined ? ` --dir ${resolve(opts.dir)}` : '';
}

interface DownOptions extends DirOptions {
  readonly force?: boolean;
  readonly purge?: boolean;
}

async function runDown(opts: DownOptions): Promise<void> {
  const dir = labDir(opts);
  await preflight();
  // First: its conntrack children run inside the lab's namespaces.
  const served = await stopServe(dir);
  const agents = await stopAgents(dir);
  const result = await labCall(() =>
    labDown({ dir, ...(opts.prefix !== undefined ? { prefix: opts.prefix } : {}), force: opts.force === true, purge: opts.purge === true }),
  );
  if (opts.purge) {
    await rm(desiredDir(dir), { recursive: true, force: true });
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const n of names) if (/^agent-.*\.(json|pid)$/.test(n) || /^flows\.db(-wal|-shm)?$/.test(n) || n === 'reasons.json') await rm(join(dir, n), { force: true });
  }
  await writeOutput(
    `lab down in ${dir}: ${result.removedNetns.length} namespaces removed, ${result.stoppedPids.length} processes, ${agents.length} agents${served !== undefined ? ' and the visibility server' : ''} stopped${opts.purge ? ', state purged' : ''}\n`,
  );
}

// ------------------------------------------------------------------ status

interface StatusOptions extends DirOptions {
  readonly output: 'txt' | 'json';
}

function labelsText(labels: Readonly<Record<string, string>>): string {
  return Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

function agentText(a: AgentInfo | undefined): string {
  if (!a || a.pid === undefined) return 'none';
  if (!a.running) return `pid ${a.pid} NOT RUNNING`;
  const s = a.status;
  if (!s) return `pid ${a.pid}, no apply yet`;
  return `pid ${a.pid}, sync #${s.generation} ${s.lastApplyOk ? 'ok' : `FAILED (${s.error ?? ''})`}, ${s.rules ?? '?'} rules`;
}

async function runStatus(opts: StatusOptions): Promise<void> {
  const dir = labDir(opts);
  const { state, problems } = await labCall(() => labStatus(dir));
  if (!state || state.status === 'down') {
    const text = state ? `the lab in ${dir} is down` : `no lab in ${dir}`;
    await writeOutput(opts.output === 'json' ? `${JSON.stringify({ dir, status: state?.status ?? 'none' }, null, 2)}\n` : `${text}\n`);
    exitStatus.raise(EXIT_FINDINGS);
    return;
  }
  const desired = await loadDesired(dir);
  const engine = new PolicyEngine(labCluster(desired.cluster, state));
  const agents = await agentInfo(dir, state.nodes);
  const serve = await serveInfo(dir);
  const recorded = agents.some((a) => a.pid !== undefined);
  const allProblems = [...problems];
  if (serve.pid !== undefined && !serve.running) allProblems.push(`the visibility server (pid ${serve.pid}) is not running: see ${serveLogFile(dir)}`);
  for (const a of agents) {
    if (a.pid !== undefined && !a.running) allProblems.push(`agent of ${a.node} (pid ${a.pid}) is not running: see ${agentLogFile(dir, a.node)}`);
    else if (a.status && !a.status.lastApplyOk) allProblems.push(`agent of ${a.node}: last apply failed (${a.status.error ?? ''}); the previous ruleset stays in force`);
    else if (recorded && a.pid === undefined) allProblems.push(`no agent recorded for ${a.node}`);
  }
  const policies = desired.cluster.networkPolicies.length + desired.cluster.adminNetworkPolicies.length + (desired.cluster.baselineAdminNetworkPolicy ? 1 : 0);
  const generation = await readGeneration(dir);
  const identity = (key: string): { id: number; labels: Readonly<Record<string, string>> } | undefined => {
    const id = engine.identityOfPod(key);
    return id ? { id: id.id, labels: id.labels } : undefined;
  };
  if (opts.output === 'json') {
    const out = {
      dir,
      prefix: state.prefix,
      status: state.status,
      generation,
      policies,
      enforced: recorded,
      serve: serve.pid !== undefined ? serve : null,
      nodes: state.nodes.map((n) => {
        const a = agents.find((x) => x.node === n.name);
        return { name: n.name, netns: n.netns, underlayIp: n.underlayIp, podCidr: n.podCidr, agent: a ?? null };
      }),
      pods: state.pods.map((p) => ({ key: p.key, ip: p.ip, node: p.node, netns: p.netns, workload: p.workload, labels: p.labels, identity: identity(p.key) ?? null, serverPid: p.serverPid ?? null })),
      external: { ip: state.external.ip, node: state.external.node, netns: state.external.netns },
      problems: allProblems,
    };
    await writeOutput(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    const lines: string[] = [];
    lines.push(
      `lab ${dir}: ${state.status}, prefix ${state.prefix}, ${state.nodes.length} nodes, ${state.pods.length} pods, ${policies} policies (desired generation ${generation})` +
        (recorded ? '' : ' — no agents: policies are NOT enforced'),
    );
    lines.push(
      serve.pid === undefined
        ? 'visibility: no server (start one with `weir serve`)'
        : serve.running
          ? `visibility: ${serve.url ?? '?'}/ (weir serve pid ${serve.pid})`
          : `visibility: weir serve pid ${serve.pid} NOT RUNNING`,
    );
    lines.push('');
    lines.push(table([['NODE', 'NETNS', 'ADDRESS', 'POD CIDR', 'AGENT'], ...state.nodes.map((n) => [n.name, n.netns, n.underlayIp, n.podCidr, agentText(agents.find((a) => a.node === n.name))])]));
    lines.push('');
    lines.push(
      table([
        ['POD', 'IP', 'NODE', 'IDENTITY', 'LABELS'],
        ...state.pods.map((p) => {
          const id = identity(p.key);
          return [p.key, p.ip, p.node, id ? `#${id.id}` : '-', labelsText(id?.labels ?? p.labels)];
        }),
        ['external', state.external.ip, state.external.node, '-', `(${state.external.cidr})`],
      ]),
    );
    if (allProblems.length > 0) {
      lines.push('');
      lines.push('problems:');
      for (const p of allProblems) lines.push(`  ${p}`);
    }
    await writeOutput(`${lines.join('\n')}\n`);
  }
  if (allProblems.length > 0) exitStatus.raise(EXIT_FINDINGS);
}

// ------------------------------------------------------------------ exec

async function runExec(target: string, argv: string[], opts: DirOptions): Promise<void> {
  if (argv.length === 0) throw new CliError('nothing to run: weir lab exec NS/POD -- COMMAND [ARGS…]');
  const state = await requireUp(labDir(opts));
  const netns = await labCall(async () => targetNetns(state, target));
  // Inherited stdio: interactive and streaming commands (ping, nc) behave as in a shell.
  const code = await new Promise<number>((done, fail) => {
    const child = spawn('ip', ['netns', 'exec', netns, ...argv], { stdio: 'inherit' });
    child.on('error', (e) => fail(new CliError(`cannot run ${argv[0] ?? ''}: ${e.message}`)));
    child.on('exit', (c, signal) => done(c ?? (signal ? 128 + 15 : 1)));
  });
  exitStatus.raise(code);
}

// ------------------------------------------------------------------ probe

interface ProbeOptions extends DirOptions {
  readonly port: string[];
  readonly from: string[];
  readonly to: string[];
  readonly compare?: boolean;
  readonly external: boolean;
  readonly timeout?: string;
  readonly output: 'txt' | 'json';
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

async function runProbe(opts: ProbeOptions): Promise<void> {
  const dir = labDir(opts);
  let ports: PortSpec[] | undefined;
  try {
    ports = opts.port.length > 0 ? opts.port.flatMap((p) => p.split(',')).map(parsePortSpec) : undefined;
  } catch (e) {
    throw new CliError(e instanceof Error ? e.message : String(e));
  }
  const timeoutMs = opts.timeout !== undefined ? Number(opts.timeout) : undefined;
  if (timeoutMs !== undefined && (!Number.isInteger(timeoutMs) || timeoutMs < 50)) throw new CliError(`invalid --timeout "${opts.timeout}": milliseconds, at least 50`);
  const state = await requireUp(dir);
  const desired = opts.compare ? await loadDesired(dir) : undefined;
  if (desired && !desired.present) throw new CliError(`the lab in ${dir} has no desired manifests (${desiredDir(dir)}): start it with \`weir lab up\` to compare`);
  const result = await labCall(() =>
    probe(state, {
      ...(ports ? { ports } : {}),
      ...(opts.from.length > 0 ? { from: opts.from } : {}),
      ...(opts.to.length > 0 ? { to: opts.to } : {}),
      external: opts.external,
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
    }),
  );
  let comparison: Comparison | undefined;
  let final = result;
  let retried = 0;
  if (desired) {
    comparison = compareWithDesired(desired.cluster, state, result);
    const slow = timedOutAllowedCells(comparison);
    if (slow.length > 0) {
      // A second, patient look at cells the engine allows but that timed out (one per cell,
      // three times the timeout), so a loaded machine does not report a false disagreement.
      const again = [];
      for (const c of slow) {
        again.push(
          await labCall(() =>
            probe(state, { from: [c.from], to: [c.to], ports: [{ port: c.port, protocol: c.protocol as PortSpec['protocol'] }], external: true, timeoutMs: 3 * (timeoutMs ?? 1000) }),
          ),
        );
      }
      retried = slow.length;
      final = mergeProbeCells(result, again);
      comparison = compareWithDesired(desired.cluster, state, final);
    }
  }
  if (opts.output === 'json') {
    await writeOutput(`${JSON.stringify({ ...final, ...(comparison ? { comparison: comparisonJson(comparison), retried } : {}) }, null, 2)}\n`);
  } else {
    const parts = [formatReachability(final) || 'nothing probed (no target serves the requested ports)'];
    if (retried > 0) parts.push(`${retried} cell(s) the engine allows timed out and were probed again with a ${3 * (timeoutMs ?? 1000)} ms timeout`);
    if (comparison) parts.push(formatComparison(comparison));
    await writeOutput(`${parts.join('\n\n')}\n`);
  }
  if (comparison && comparison.disagreements.length > 0) exitStatus.raise(EXIT_FINDINGS);
}

// ------------------------------------------------------------------ apply / delete

interface ChangeOptions extends DirOptions {
  readonly timeout?: string;
}

/** Validates the next desired set, applies pods to the lab, writes the folder, waits for the agents. */
async function changeDesired(dir: string, next: Map<string, string>, quiet: boolean, timeoutMs: number): Promise<{ pods: string; agents: SettledAgent[] | undefined }> {
  const state = await requireUp(dir);
  // A lab with agents must have all of them: a change only some nodes enforce is refused
  // before anything is written.
  const info = await agentInfo(dir, state.nodes);
  const enforced = info.some((a) => a.pid !== undefined);
  const dead = info.filter((a) => !a.running).map((a) => a.node);
  if (enforced && dead.length > 0) {
    throw new CliError(`no agent is running for ${dead.join(', ')} (see ${join(dir, 'logs')}): nothing was changed; restart the lab with \`weir lab down\` and \`weir lab up\``);
  }
  const built = buildDesired(dir, next);
  if (hasErrors(built.diagnostics)) {
    printDiagnostics(
      built.diagnostics.filter((d) => d.severity === 'error'),
      quiet,
    );
    throw new CliError('the resulting manifest set is invalid: nothing was changed');
  }
  // The lab validates pod changes (addresses, pools) before it changes anything: ask first,
  // so a refused change leaves the desired folder as it was too.
  await labCall(async () => {
    planLab({ ...built.cluster, nodes: state.nodes.map((n) => ({ name: n.name, labels: n.labels })) }, { nodes: state.nodes.length, dir, prefix: state.prefix }, state);
  });
  // Policies first: a pod that is added below is then enforced by the new policies from
  // the agents' next sync on, never by a stale set.
  await writeDesired(dir, next);
  const applied = await labCall(() => labApply(dir, built.cluster, { onDiagnostics: (d) => printDiagnostics(d, quiet) }));
  const generation = await bumpGeneration(dir);
  const since = Date.now();
  const pods = `pods: ${applied.added.length} added, ${applied.removed.length} removed, ${applied.relabelled.length} relabelled`;
  if (!enforced) return { pods, agents: undefined };
  const agents = await labCall(() => waitForAgents(dir, state.nodes, { generation, since, timeoutMs }));
  return { pods, agents };
}

function enforcedText(agents: SettledAgent[] | undefined): string {
  if (!agents) return 'no agents: policies are NOT enforced';
  const worst = Math.max(0, ...agents.map((a) => a.ms));
  return `enforced on ${agents.length} node${agents.length === 1 ? '' : 's'} within ${worst} ms`;
}

function timeoutOf(opts: ChangeOptions): number {
  if (opts.timeout === undefined) return 15_000;
  const n = Number(opts.timeout);
  if (!Number.isFinite(n) || n <= 0) throw new CliError(`invalid --timeout "${opts.timeout}": seconds`);
  return n * 1000;
}

async function runApply(paths: string[], opts: ChangeOptions, cmd: Command): Promise<void> {
  const quiet = cmd.optsWithGlobals<GlobalOptions>().quiet === true;
  const dir = labDir(opts);
  await requireUp(dir);
  // A file applied alone refers to namespaces the lab already has: the loader's notice that
  // they are not declared (in this file) would only confuse; the merged set is checked below.
  const input = await loadInput(paths, { silent: true });
  printDiagnostics(
    input.diagnostics.filter((d) => d.code !== 'implicit-namespace'),
    quiet,
  );
  if (input.hasErrors) {
    const n = countErrors(input.diagnostics);
    throw new CliError(`${n} error${n === 1 ? '' : 's'} in the manifests: nothing was changed`);
  }
  const objects = await readObjects(paths);
  if (objects.length === 0) throw new CliError(`no objects in ${paths.join(' ')}`);
  const current = await readDesired(dir);
  const next = new Map(current);
  const verbs: string[] = [];
  for (const o of objects) {
    const old = current.get(o.file);
    // The `# source` line differs per file; compare the objects themselves.
    const body = (t: string | undefined): string | undefined => t?.replace(/^# .*\n/, '');
    verbs.push(`${o.id} ${old === undefined ? 'created' : body(old) === body(o.text) ? 'unchanged' : 'configured'}`);
    next.set(o.file, o.text);
  }
  const { pods, agents } = await changeDesired(dir, next, quiet, timeoutOf(opts));
  await writeOutput(`${verbs.join('\n')}\n${pods}; ${enforcedText(agents)}\n`);
}

async function runDelete(paths: string[], opts: ChangeOptions, cmd: Command): Promise<void> {
  const quiet = cmd.optsWithGlobals<GlobalOptions>().quiet === true;
  const dir = labDir(opts);
  await requireUp(dir);
  const { diagnostics } = await findManifestFiles(paths);
  if (hasErrors(diagnostics)) {
    printDiagnostics(diagnostics, quiet);
    throw new CliError('nothing was deleted');
  }
  const objects = await readObjects(paths);
  if (objects.length === 0) throw new CliError(`no objects in ${paths.join(' ')}`);
  const next = await readDesired(dir);
  const verbs: string[] = [];
  let missing = 0;
  for (const o of objects) {
    if (next.delete(o.file)) verbs.push(`${o.id} deleted`);
    else {
      verbs.push(`${o.id} not found`);
      missing++;
    }
  }
  if (missing === objects.length) {
    await writeOutput(`${verbs.join('\n')}\n`);
    exitStatus.raise(EXIT_FINDINGS);
    return;
  }
  const { pods, agents } = await changeDesired(dir, next, quiet, timeoutOf(opts));
  await writeOutput(`${verbs.join('\n')}\n${pods}; ${enforcedText(agents)}\n`);
  if (missing > 0) exitStatus.raise(EXIT_FINDINGS);
}

// ------------------------------------------------------------------ agent

interface AgentOptions {
  readonly labDir: string;
  readonly node: string;
  readonly strict?: boolean;
  readonly manifests?: string[];
}

async function runAgentCommand(opts: AgentOptions): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    const status = await runAgent({
      labDir: resolve(opts.labDir),
      node: opts.node,
      strict: opts.strict === true,
      ...(opts.manifests ? { manifests: opts.manifests } : {}),
      signal: controller.signal,
    });
    if (!controller.signal.aborted && status && !status.lastApplyOk) exitStatus.raise(EXIT_FINDINGS);
  } finally {
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  }
}

// ------------------------------------------------------------------ registration

function dirOptions(cmd: Command): Command {
  return cmd
    .option('--dir <dir>', 'lab directory (default: $WEIR_LAB_DIR, else /run/weir/lab, or /run/weir/lab-<id> for another --prefix)')
    .option('--prefix <prefix>', `network namespace prefix of the lab instance (default "${DEFAULT_PREFIX}")`);
}

export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('emulated nodes and pods as network namespaces, enforced by the real data plane (Linux, root)')
    .addHelpText(
      'after',
      `
Examples:
  $ sudo weir lab up                                   the demo (examples/demo/) on 2 nodes
  $ sudo weir lab up examples/e2e-model --nodes 3
  $ sudo weir lab status
  $ sudo weir lab probe --port 80/TCP --compare        real packets vs the analyzer
  $ sudo weir lab apply deny.yaml && sudo weir lab probe --port 80/TCP
  $ sudo weir lab exec x/a -- nc -vz 10.244.1.1 80
  $ sudo weir lab down`,
    );

  dirOptions(
    lab
      .command('up')
      .description('build the lab from manifests and start one enforcing agent per node')
      .argument('[paths...]', 'manifest files or folders (default: examples/demo/)'),
  )
    .option('-n, --nodes <n>', 'number of emulated nodes (default: declared nodes, at least 2)')
    .option('--no-agent', 'do not start the agents: no policy is enforced (plain connectivity)')
    .option('--strict', 'agents flush conntrack entries a narrowed policy no longer allows')
    .option('--no-serve', 'do not start the visibility server (`weir serve`: flows API and dashboard)')
    .option('--serve-port <port>', 'port of the visibility server on 127.0.0.1 (default 7680; 0: any free port)')
    .option('--alerts <file>', 'alert rules for the visibility server (YAML)')
    .addHelpText('after', '\nExit status: 0 up, 1 up but the visibility server did not start, 2 invalid manifests (nothing created), not root, missing tools, or a lab already up.')
    .action(runUp);

  dirOptions(lab.command('down').description('stop the agents and servers, remove every namespace of the lab'))
    .option('--force', 'also remove leftover namespaces with the prefix, even without a (valid) state file')
    .option('--purge', 'also delete the state (addresses are not kept for the next up), desired manifests and logs')
    .action(runDown);

  dirOptions(lab.command('status').description('nodes, agents, pods with address, node and policy identity'))
    .addOption(new Option('-o, --output <format>', 'output format').choices(['txt', 'json']).default('txt'))
    .addHelpText('after', '\nExit status: 0 up and healthy, 1 down, missing, or with problems (listed).')
    .action(runStatus);

  dirOptions(
    lab
      .command('exec')
      .description("run a command in a pod's (or node's, or the external host's) network namespace")
      .argument('<target>', 'ns/pod, a node name (node-0), "external" or "underlay"')
      .argument('[command...]', 'the command, after --'),
  )
    .addHelpText('after', '\nExample:\n  $ weir lab exec x/a -- ping -c 1 10.244.1.2\n\nExit status: the command\'s.')
    .action((target: string, argv: string[], opts: DirOptions) => runExec(target, argv, opts));

  dirOptions(lab.command('probe').description('probe every pod and the external host from every pod and the external host, with real packets'))
    .option('-p, --port <port>', 'PORT[/TCP|UDP], repeatable or comma-separated (default: each target\'s served ports)', collect, [])
    .option('--from <peer>', 'source ns/pod or "external", repeatable (default: all)', collect, [])
    .option('--to <peer>', 'target ns/pod or "external", repeatable (default: all)', collect, [])
    .option('--no-external', 'leave the external host out of the default peers')
    .option('--timeout <ms>', 'per-attempt timeout in milliseconds (default 1000)')
    .option('--compare', "compare every cell with the analyzer's verdict; exit 1 on any disagreement")
    .addOption(new Option('-o, --output <format>', 'output format').choices(['txt', 'json']).default('txt'))
    .addHelpText(
      'after',
      `
Tables use the upstream e2e layout: rows are sources, columns targets, "." reachable, "X" not,
"-" not probed. With --compare, each disagreeing cell is printed with the engine's explanation.

Exit status: 0 ok, 1 disagreements (--compare), 2 no lab up or bad arguments.`,
    )
    .action(runProbe);

  dirOptions(
    lab
      .command('apply')
      .description('add or replace objects (policies, pods, namespaces, labels) in the running lab')
      .argument('<paths...>', 'manifest files or folders'),
  )
    .option('--timeout <seconds>', 'how long to wait for the agents to apply the change (default 15)')
    .addHelpText('after', '\nReturns once every agent has applied the change. Exit status: 0 ok, 2 invalid manifests (nothing changed).')
    .action(runApply);

  dirOptions(
    lab
      .command('delete')
      .description('remove the objects named in the files from the running lab')
      .argument('<paths...>', 'manifest files or folders naming the objects (kind, namespace, name)'),
  )
    .option('--timeout <seconds>', 'how long to wait for the agents to apply the change (default 15)')
    .addHelpText('after', '\nExit status: 0 ok, 1 some objects were not in the lab, 2 bad input.')
    .action(runDelete);

  program
    .command('agent')
    .description('the per-node enforcement agent (started by `weir lab up`; one per node)')
    .requiredOption('--lab-dir <dir>', 'lab directory (state.json, desired/)')
    .requiredOption('--node <name>', 'node to enforce (node-0, …)')
    .option('--strict', 'flush conntrack entries a narrowed policy no longer allows')
    .option('--manifests <path...>', 'manifest files or folders to enforce (default: <lab-dir>/desired/)')
    .action(runAgentCommand);
}
