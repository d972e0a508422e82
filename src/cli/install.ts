// `weir install --dry-run`: prints weir's cluster manifests (deploy/) for a namespace and an
// image, after checking every object against the Kubernetes types. Applying them is
// kubectl's job (`weir install --dry-run … | kubectl apply -f -`, or `kubectl apply -k`).

import type { Command } from 'commander';
import { KustomizeError, renderInstall, toYaml } from '../install/index.js';
import { checkNamespaceName } from '../load/syntax.js';
import { CliError, EXIT_INPUT } from './exit.js';

interface InstallCliOptions {
  readonly dryRun?: boolean;
  readonly namespace?: string;
  readonly image?: string;
  readonly overlay: string;
  readonly from?: string;
}

function runInstall(o: InstallCliOptions): void {
  if (!o.dryRun) {
    throw new CliError('weir install only renders manifests: add --dry-run and pipe them to `kubectl apply -f -` (or use `kubectl apply -k deploy/overlays/default`)');
  }
  if (o.namespace !== undefined) {
    const err = checkNamespaceName(o.namespace);
    if (err) throw new CliError(`invalid --namespace "${o.namespace}": ${err}`);
  }
  if (o.image !== undefined && !/^[a-z0-9]+([._\-/:@][a-zA-Z0-9_.-]+)*$/.test(o.image)) throw new CliError(`invalid --image "${o.image}"`);
  let rendered;
  try {
    rendered = renderInstall({ overlay: o.overlay, ...(o.from !== undefined ? { from: o.from } : {}), ...(o.namespace !== undefined ? { namespace: o.namespace } : {}), ...(o.image !== undefined ? { image: o.image } : {}) });
  } catch (e) {
    if (e instanceof KustomizeError) throw new CliError(e.message, EXIT_INPUT, e);
    throw e;
  }
  if (rendered.problems.length > 0) {
    throw new CliError(`the manifests do not match the Kubernetes schemas:\n${rendered.problems.map((p) => `  ${p}`).join('\n')}`);
  }
  process.stdout.write(toYaml(rendered.objects));
}

export function registerInstallCommands(program: Command): void {
  program
    .command('install')
    .description('print the manifests that install weir in a cluster (agent DaemonSet, server, RBAC, settings)')
    .option('--dry-run', 'print the rendered manifests (required: weir never writes to the cluster itself)')
    .option('-n, --namespace <ns>', 'namespace to install into (default weir)')
    .option('--image <image>', 'weir image, e.g. registry.example/weir:0.1.0 (default weir:0.1.0)')
    .option('--overlay <name>', 'overlay of deploy/overlays: default, with-crds to add the AdminNetworkPolicy CRDs, or kube-proxy-replacement (agents with --services, for clusters without kube-proxy)', 'default')
    .option('--from <dir>', 'render this kustomization folder instead of an overlay')
    .addHelpText(
      'after',
      `
Examples:
  $ weir install --dry-run --namespace netsec --image registry.example/weir:0.1.0 | kubectl apply -f -
  $ weir install --dry-run --overlay with-crds > weir.yaml`,
    )
    .action((o: InstallCliOptions) => runInstall(o));
}
