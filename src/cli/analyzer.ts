// The offline faces of the engine: `weir analyze`, `weir explain`, `weir lint`.
// Thin shell: load manifests, ask the engine (src/policy) and the analyzer (src/analyze),
// print. Everything that decides lives in those libraries.

import { Option, type Command } from 'commander';
import { connectivityList, FocusNotFoundError } from '../analyze/connlist.js';
import { OUTPUT_FORMATS, renderConnList, type OutputFormat } from '../analyze/formats.js';
import { compareFindings, lint, LINT_FORMATS, renderFindings, summarize, summaryText, type LintFormat } from '../analyze/lint.js';
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
  readonly output?: string;
}

async function runAnalyze(paths: string[], opts: AnalyzeOptions, cmd: Command): Promise<void> {
  const input = await loadInput(paths, globals(cmd));
  const engine = new PolicyEngine(input.cluster);
  const result = analyze(engine);
  let lines;
  try {
    lines = connectivityList(engine, result, { focusWorkload: opts.focusWorkload, explain: opts.explain });
  } catch (e) {
    if (e instanceof FocusNotFoundError) throw new CliError(e.message, EXIT_INPUT, e);
    throw e;
  }
  await writeOutput(renderConnList(lines, opts.format), opts.output);
  partialInput(input, 'the analysis');
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
    const text = opts.format === 'json' ? `${JSON.stringify(e, null, 2)}\n` : `${formatExplanation(e)}\n`;
    await writeOutput(text, opts.output);
    if (opts.failOnDeny && e.verdict === 'Denied') exitStatus.raise(EXIT_FINDINGS);
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
  const findings = [...input.diagnostics, ...lint(engine, input.cluster)]
    .filter((f) => !quiet || f.severity === 'error')
    .sort(compareFindings);
  await writeOutput(renderFindings(findings, opts.format), opts.output);
  const summary = summarize(findings);
  if (opts.format === 'txt') note(`lint: ${summaryText(summary)}`);
  if (input.hasErrors) exitStatus.raise(EXIT_INPUT);
  else if (summary.errors > 0) exitStatus.raise(EXIT_FINDINGS);
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
    .option('-o, --output <file>', 'write the result to a file instead of stdout')
    .addHelpText(
      'after',
      `
Each line is SRC => DST : CONNECTIONS, as np-guard's netpol-analyzer prints it: workloads as
namespace/name[Kind], external addresses as first-last[External] ranges.

Examples:
  $ weir analyze examples/demo
  $ weir analyze examples/demo --focus-workload shop/frontend --explain
  $ weir analyze k8s/ --format dot -o graph.dot && dot -Tsvg graph.dot > graph.svg

Exit status: 0 ok, 2 when some input was invalid (the valid objects are still analyzed).`,
    )
    .action(runAnalyze);

  program
    .command('explain')
    .description('explain why one connection is allowed or denied, rule by rule')
    .argument('<paths...>', PATHS_HELP)
    .requiredOption('--from <endpoint>', 'source: ns/pod, ns/workload, IP address or CIDR')
    .requiredOption('--to <endpoint>', 'destination: ns/pod, ns/workload, IP address or CIDR')
    .requiredOption('-p, --port <port>', 'PORT[/PROTOCOL] (protocol defaults to TCP), or a named container port of the destination')
    .addOption(new Option('-f, --format <format>', 'output format').choices(['txt', 'json']).default('txt'))
    .option('--fail-on-deny', 'exit with status 1 when the connection is denied')
    .option('-o, --output <file>', 'write the result to a file instead of stdout')
    .addHelpText(
      'after',
      `
Examples:
  $ weir explain examples/demo --from shop/frontend --to shop/cart --port 8080/TCP
  $ weir explain examples/demo --from ingress/gateway --to 8.8.8.8 --port 53/UDP --format json

Exit status: 0 whatever the verdict (the verdict is the output; use --fail-on-deny to get 1
on a deny), 2 on invalid input or an endpoint that matches nothing.`,
    )
    .action(runExplain);

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
