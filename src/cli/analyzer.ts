// The offline faces of the engine: `weir analyze`, `weir explain`, `weir lint`.
// Thin shell: load manifests, ask the engine (src/policy) and the analyzer (src/analyze),
// print. Everything that decides lives in those libraries.

import { Option, type Command } from 'commander';
import { connectivityList, FocusNotFoundError } from '../analyze/connlist.js';
import { escapeControl, escapeJson } from '../analyze/escape.js';
import { diffConnectivity, DIFF_TYPES, type DiffType } from '../analyze/diff.js';
import { exposure, exposureJson, renderExposureMd, renderExposureTxt } from '../analyze/exposure.js';
import { DIFF_FORMATS, renderDiff, type DiffFormat } from '../analyze/diff-formats.js';
import { OUTPUT_FORMATS, renderConnList, type OutputFormat } from '../analyze/formats.js';
import { explainService, formatServiceExplanation, renderServiceConnectivity, SERVICE_FORMATS, serviceConnectivity, ServiceNotFoundError, serviceSpec } from '../analyze/services.js';
import { compareFindings, lint, LINT_FORMATS, loaderFindings, renderFindings, summarize, summaryText, type LintFormat } from '../analyze/lint.js';
import type { Protocol } from '../model/cluster.js';
import { parsePortText, PortTextError, type PortText } from '../net/port.js';
import {
  analyze,
  EndpointNotFoundError,
  explain,
  formatExplanation,
  PolicyEngine,
  resolveEndpoint,
} from '../policy/index.js';
import { CliError, EXIT_FINDINGS, EXIT_INPUT, exitStatus } from './exit.js';
import { countErrors, loadInput, type Input } from './input.js';
import { note, writeOutput } from './output.js';

interface GlobalOptions {
  readonly quiet?: boolean;
}

function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals<GlobalOptions>();
}

/** Invalid objects were skipped: say so once, and finish with the input-error status. */
function partialInput(input: Input, what: string): void {
  if (!input.hasErrors) return;
  const n = countErrors(input.diagnostics);
  note(`${n} error${n === 1 ? '' : 's'} in the input: ${what} covers the valid objects only`);
  exitStatus.raise(EXIT_INPUT);
}

// ------------------------------------------------------------------ analyze

interface AnalyzeOptions {
  readonly format: OutputFormat;
  readonly focusWorkload?: string;
  readonly explain?: boolean;
  readonly exposure?: boolean;
  readonly services?: boolean;
  readonly output?: string;
}

async function runAnalyze(paths: string[], opts: AnalyzeOptions, cmd: Command): Promise<void> {
  const input = await loadInput(paths, globals(cmd));
  const engine = new PolicyEngine(input.cluster);
  const result = analyze(engine);
  if (opts.services) {
    await runAnalyzeServices(input, engine, result, opts);
    return;
  }
  let lines;
  try {
    lines = connectivityList(engine, result, { focusWorkload: opts.focusWorkload, explain: opts.explain });
  } catch (e) {
    if (e instanceof FocusNotFoundError) throw new CliError(e.message, EXIT_INPUT, e);
    throw e;
  }
  if (opts.exposure && (opts.format === 'csv' || opts.format === 'dot')) {
    throw new CliError(`--exposure is printed as txt, md or json, not ${opts.format}`);
  }
  let text = renderConnList(lines, opts.format);
  if (opts.exposure) {
    // After the connectivity list, as np-guard prints it: a blank line, then the section.
    const x = exposure(engine, result, lines);
    if (opts.format === 'json') text = escapeJson(`${JSON.stringify({ connlist: JSON.parse(text) as unknown, exposure: exposureJson(x) }, null, 2)}\n`);
    else if (opts.format === 'md') text = `${text}${renderExposureMd(x)}`;
    else text = `${text}${text ? '\n' : ''}${renderExposureTxt(x)}`;
  }
  await writeOutput(text, opts.output);
  partialInput(input, 'the analysis');
  // An UNKNOWN verdict is never an answer to rely on: the input-error status, whatever else.
  if (lines.some((l) => l.unknown)) {
    note('connections an invalid policy could allow or deny are listed as UNKNOWN (never as allowed)');
    exitStatus.raise(EXIT_INPUT);
  }
}

/** `analyze --services`: who reaches which Service port, through which endpoints (src/analyze/services.ts). */
async function runAnalyzeServices(input: Input, engine: PolicyEngine, result: ReturnType<typeof analyze>, opts: AnalyzeOptions): Promise<void> {
  const format = opts.format;
  if (format === 'dot') throw new CliError(`--services is printed as ${SERVICE_FORMATS.join(', ')}, not dot`);
  if (opts.exposure) throw new CliError('--services and --exposure are separate reports: run them one at a time');
  const sc = serviceConnectivity(engine, input.cluster, result, opts.focusWorkload !== undefined ? { focus: opts.focusWorkload } : {});
  await writeOutput(renderServiceConnectivity(sc, format), opts.output);
  partialInput(input, 'the analysis');
  if (sc.lines.some((l) => l.reach === 'unknown')) {
    note('Service connections whose endpoints or verdicts cannot be known are listed as UNKNOWN (never as allowed)');
    exitStatus.raise(EXIT_INPUT);
  }
}

// ------------------------------------------------------------------ explain

interface ExplainOptions {
  readonly from: string;
  readonly to: string;
  readonly port: string;
  readonly format: 'txt' | 'json';
  readonly failOnDeny?: boolean;
  readonly output?: string;
}

/** `--port`: `80`, `80/TCP`, `53/udp`, or a named port `http`, `dns/UDP` (src/net/port.ts). */
export type PortSpec = PortText;

export function parsePortSpec(text: string): PortSpec {
  try {
    return parsePortText(text, { named: true });
  } catch (e) {
    if (!(e instanceof PortTextError)) throw e;
    if (e.reason === 'protocol') throw new CliError(`invalid protocol "${e.protocol ?? ''}" in --port "${text}": expected TCP, UDP or SCTP`);
    if (e.reason === 'range') throw new CliError(`invalid --port "${text}": port must be 1-65535`);
    throw new CliError(`invalid --port "${text}": expected PORT[/PROTOCOL], e.g. 80/TCP, 53/UDP or http`);
  }
}

async function runExplain(paths: string[], opts: ExplainOptions, cmd: Command): Promise<void> {
  const spec = parsePortSpec(opts.port);
  const input = await loadInput(paths, globals(cmd));
  const engine = new PolicyEngine(input.cluster);
  const service = serviceSpec(opts.to);
  if (service !== undefined) {
    // Policy after DNAT: the Service port resolved to its endpoints, each explained as the
    // connection to the real pod and target port.
    try {
      const e = explainService(engine, input.cluster, opts.from, service, spec.port, spec.protocol);
      const text = opts.format === 'json' ? escapeJson(`${JSON.stringify(e, null, 2)}\n`) : `${formatServiceExplanation(e).split('\n').map(escapeControl).join('\n')}\n`;
      await writeOutput(text, opts.output);
      if (opts.failOnDeny && (e.verdict === 'Denied' || e.verdict === 'Partial' || e.verdict === 'Mixed')) exitStatus.raise(EXIT_FINDINGS);
      if (e.verdict === 'Unknown') exitStatus.raise(EXIT_INPUT);
    } catch (e) {
      if (e instanceof EndpointNotFoundError || e instanceof ServiceNotFoundError) throw new CliError(e.message, EXIT_INPUT, e);
      throw e;
    }
    partialInput(input, 'the explanation');
    return;
  }
  let port: number;
  let protocol: Protocol = spec.protocol ?? 'TCP';
  try {
    if (typeof spec.port === 'number') port = spec.port;
    else {
      // A named port means the destination's container port of that name, as in a policy.
      const dst = resolveEndpoint(engine, opts.to);
      const cp = (dst.endpoint.identity?.ports ?? []).find((p) => p.name === spec.port && (spec.protocol === undefined || p.protocol === spec.protocol));
      if (!cp) throw new CliError(`${dst.label} has no container port named "${spec.port}"${spec.protocol ? `/${spec.protocol}` : ''}`);
      port = cp.port;
      protocol = cp.protocol;
    }
    const e = explain(engine, opts.from, opts.to, protocol, port);
    const text = opts.format === 'json' ? escapeJson(`${JSON.stringify(e, null, 2)}\n`) : `${formatExplanation(e).split('\n').map(escapeControl).join('\n')}\n`;
    await writeOutput(text, opts.output);
    const verdicts = e.ranges ? e.ranges.map((r) => r.verdict) : [e.verdict];
    if (opts.failOnDeny && verdicts.includes('Denied')) exitStatus.raise(EXIT_FINDINGS);
    if (verdicts.includes('Unknown')) exitStatus.raise(EXIT_INPUT);
  } catch (e) {
    if (e instanceof EndpointNotFoundError) throw new CliError(e.message, EXIT_INPUT, e);
    throw e;
  }
  partialInput(input, 'the explanation');
}

// ------------------------------------------------------------------ lint

interface LintOptions {
  readonly format: LintFormat;
  readonly output?: string;
}

async function runLint(paths: string[], opts: LintOptions, cmd: Command): Promise<void> {
  // The loader's diagnostics are findings too (an except outside its cidr is rejected while
  // loading): lint reports them with its own, on stdout and in the JSON array.
  const input = await loadInput(paths, { ...globals(cmd), silent: true });
  const engine = new PolicyEngine(input.cluster);
  const quiet = globals(cmd).quiet === true;
  const findings = [...loaderFindings(input.diagnostics), ...lint(engine, input.cluster)]
    .filter((f) => !quiet || f.severity === 'error')
    .sort(compareFindings);
  await writeOutput(renderFindings(findings, opts.format), opts.output);
  const summary = summarize(findings);
  if (opts.format === 'txt') note(`lint: ${summaryText(summary)}`);
  if (input.hasErrors) exitStatus.raise(EXIT_INPUT);
  else if (summary.errors > 0) exitStatus.raise(EXIT_FINDINGS);
}

// ------------------------------------------------------------------ diff

interface DiffCliOptions {
  readonly old?: string[];
  readonly new?: string[];
  readonly format: DiffFormat;
  readonly failOn?: DiffType[];
  readonly output?: string;
}

function parseFailOn(value: string, previous: DiffType[] = []): DiffType[] {
  const out = [...previous];
  for (const t of value.split(',').map((x) => x.trim()).filter(Boolean)) {
    if (!(DIFF_TYPES as readonly string[]).includes(t)) throw new CliError(`invalid --fail-on "${t}": expected added, removed or changed`);
    out.push(t as DiffType);
  }
  return out;
}

/** OLD… -- NEW… (the `--` is found in the raw arguments: commander folds it into the operands). */
function splitVersions(paths: string[], opts: DiffCliOptions, cmd: Command): { oldPaths: string[]; newPaths: string[] } {
  if (opts.old !== undefined || opts.new !== undefined) {
    if (!opts.old?.length || !opts.new?.length) throw new CliError('--old and --new go together: weir diff --old OLD --new NEW');
    if (paths.length > 0) throw new CliError('give the versions either as OLD… -- NEW… or with --old/--new, not both');
    return { oldPaths: opts.old, newPaths: opts.new };
  }
  // Commander keeps the raw arguments (`rawArgs`) without declaring them in its types.
  const raw = (cmd.parent as unknown as { readonly rawArgs?: readonly string[] } | null)?.rawArgs ?? [];
  const dash = raw.lastIndexOf('--');
  const after = dash < 0 ? -1 : raw.length - dash - 1;
  if (after <= 0 || after >= paths.length) throw new CliError('expected two versions: weir diff OLD… -- NEW… (or --old OLD --new NEW)');
  const stray = paths.slice(paths.length - after).find((p) => p.startsWith('-'));
  if (stray !== undefined) throw new CliError(`"${stray}" after --: options go before --, everything after it is the new version's paths`);
  return { oldPaths: paths.slice(0, paths.length - after), newPaths: paths.slice(paths.length - after) };
}

async function runDiff(paths: string[], opts: DiffCliOptions, cmd: Command): Promise<void> {
  const { oldPaths, newPaths } = splitVersions(paths, opts, cmd);
  const before = await loadInput(oldPaths, globals(cmd));
  const after = await loadInput(newPaths, globals(cmd));
  const d = diffConnectivity(new PolicyEngine(before.cluster), new PolicyEngine(after.cluster), { unchanged: opts.format === 'dot' });
  await writeOutput(renderDiff(d, opts.format), opts.output);
  if (before.hasErrors || after.hasErrors) {
    note(`errors in the input (${countErrors(before.diagnostics)} old, ${countErrors(after.diagnostics)} new): the diff covers the valid objects only`);
    exitStatus.raise(EXIT_INPUT);
  }
  const failOn = opts.failOn ?? [];
  const hit = DIFF_TYPES.filter((t) => failOn.includes(t) && d.lines.some((l) => l.type === t));
  if (hit.length > 0) {
    note(`--fail-on: ${hit.map((t) => `${d.lines.filter((l) => l.type === t).length} ${t}`).join(', ')}`);
    exitStatus.raise(EXIT_FINDINGS);
  }
}

// ------------------------------------------------------------------ registration

const PATHS_HELP = 'manifest files or folders (.yaml, .yml, .json; folders recursively)';

export function registerAnalyzerCommands(program: Command): void {
  program
    .command('analyze')
    .description('list the allowed connections between workloads and external address ranges')
    .argument('<paths...>', PATHS_HELP)
    .addOption(new Option('-f, --format <format>', 'output format').choices(OUTPUT_FORMATS).default('txt'))
    .option('--focus-workload <workload>', 'keep only connections of this workload (ns/name or name)')
    .option('--explain', 'name, per connection, the policy rules that allow it')
    .option('--services', 'list connections to Services instead: who reaches which Service port through which endpoints (txt, json, csv, md)')
    .option('--exposure', 'then which workloads are exposed to the entire cluster, label-selected namespaces and pods (existing or not) and external addresses, and which no policy protects')
    .option('-o, --output <file>', 'write the result to a file instead of stdout')
    .addHelpText(
      'after',
      `
Each line is SRC => DST : CONNECTIONS, as np-guard's netpol-analyzer prints it: workloads as
namespace/name[Kind], external addresses as first-last[External] ranges.

Examples:
  $ weir analyze examples/demo
  $ weir analyze examples/demo --focus-workload shop/frontend --explain
  $ weir analyze examples/demo --exposure
  $ weir analyze examples/demo --services --format csv
  $ weir analyze k8s/ --format dot -o graph.dot && dot -Tsvg graph.dot > graph.svg

Exit status: 0 ok, 2 when some input was invalid (the valid objects are still analyzed).`,
    )
    .action(runAnalyze);

  program
    .command('explain')
    .description('explain why one connection is allowed or denied, rule by rule')
    .argument('<paths...>', PATHS_HELP)
    .requiredOption('--from <endpoint>', 'source: ns/pod, ns/workload, IP address or CIDR')
    .requiredOption('--to <endpoint>', 'destination: ns/pod, ns/workload, IP address, CIDR, or svc/ns/name (a Service: each endpoint explained)')
    .requiredOption('-p, --port <port>', 'PORT[/PROTOCOL] (protocol defaults to TCP), or a named container port of the destination (of a Service: its port number or name)')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['txt', 'json']).default('txt'))
    .option('--fail-on-deny', 'exit with status 1 when the connection is denied')
    .option('-o, --output <file>', 'write the result to a file instead of stdout')
    .addHelpText(
      'after',
      `
Examples:
  $ weir explain examples/demo --from shop/frontend --to shop/cart --port 8080/TCP
  $ weir explain examples/demo --from ingress/gateway --to 8.8.8.8 --port 53/UDP --format json
  $ weir explain examples/demo --from shop/frontend --to svc/shop/cart --port 80

Exit status: 0 whatever the verdict (the verdict is the output; use --fail-on-deny to get 1
on a deny), 2 on invalid input or an endpoint that matches nothing.`,
    )
    .action(runExplain);

  program
    .command('diff')
    .description('the connections a change adds, removes or changes, and the workloads it adds or removes')
    .argument('[paths...]', 'OLD… -- NEW…: manifest files or folders of each version')
    .option('--old <paths...>', 'the old version (instead of OLD… --)')
    .option('--new <paths...>', 'the new version (instead of -- NEW…)')
    .addOption(new Option('-f, --format <format>', 'output format').choices(DIFF_FORMATS).default('txt'))
    .option('--fail-on <types>', 'exit 1 when the diff has connections of these types: added, removed, changed (comma-separated or repeated)', parseFailOn)
    .option('-o, --output <file>', 'write the result to a file instead of stdout')
    .addHelpText(
      'after',
      `
Lines as np-guard's netpol-analyzer prints them:
  diff-type: added, source: S, destination: D, old: No Connections, new: TCP 8080[, workloads-diff-info: …]

Examples:
  $ weir diff main/k8s -- k8s
  $ weir diff --old main/k8s --new k8s --fail-on added        # CI: this change opens nothing new
  $ weir diff old/ -- new/ --format dot -o diff.dot           # added edges green, removed red

Exit status: 0 ok, 1 a difference of a --fail-on type exists, 2 invalid input or arguments.`,
    )
    .action(runDiff);

  program
    .command('lint')
    .description('report policy mistakes: selectors matching nothing, shadowed rules, conflicting priorities, ...')
    .argument('<paths...>', PATHS_HELP)
    .addOption(new Option('-f, --format <format>', 'output format').choices(LINT_FORMATS).default('txt'))
    .option('-o, --output <file>', 'write the result to a file instead of stdout')
    .addHelpText(
      'after',
      `
Findings include the loader's own diagnostics (invalid YAML, invalid CIDRs, ...).

Examples:
  $ weir lint examples/demo
  $ weir lint k8s/ --format json | jq '.[] | select(.severity == "error")'

Exit status: 0 no errors (warnings and notices allowed), 1 lint errors, 2 invalid input.`,
    )
    .action(runLint);
}
