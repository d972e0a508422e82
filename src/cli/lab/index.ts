// `weir lab …` and `weir agent`: the lab's faces on the command line, one file per command.
// Thin shell over src/lab (namespaces, pods, probes, the desired state), src/lab/supervisor.ts
// (one agent process per node) and src/lab/compare.ts (the engine's verdicts against the
// probe's packets).

import { Option, type Command } from 'commander';
import { runAgentCommand, type AgentOptions } from './agent.js';
import { runApply } from './apply.js';
import { collect, dirOptions, type DirOptions } from './common.js';
import { runDelete } from './delete.js';
import { runDown } from './down.js';
import { runExec } from './exec.js';
import { runProbe } from './probe.js';
import { runStatus } from './status.js';
import { runUp } from './up.js';

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
  $ sudo weir lab probe --port 80/TCP --matrix         the reachability table
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
    .option('--no-dns', 'do not start the lab DNS (name.ns.svc.cluster.local on 169.254.20.10 in every node)')
    .option('--no-serve', 'do not start the visibility server (`weir serve`: flows API and dashboard)')
    .option('--serve-port <port>', 'port of the visibility server on 127.0.0.1 (default 7680; 0: any free port)')
    .option('--alerts <file>', 'alert rules for the visibility server (YAML)')
    .option('--source <files|kube>', 'where the agents read the lab: its files (default), or a Kubernetes API server the lab runs (<dir>/kubeconfig)')
    .option('--services', 'with --source kube: the agents also program Service NAT (`weir agent --services`; the lab has no kube-proxy)')
    .option('--server <url>', 'agents ship flows to this server (`weir serve --cluster`) instead of a lab-local one; with --token-file')
    .option('--token-file <file>', 'bearer token of --server')
    .addHelpText('after', '\nExit status: 0 up, 1 up but the visibility server or the lab DNS did not start, 2 invalid manifests (nothing created), not root, missing tools, or a lab already up.')
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
    .option('--to <peer>', 'target ns/pod, "external" or svc/ns/name (a Service), repeatable (default: all)', collect, [])
    .option('--no-external', 'leave the external host out of the default peers')
    .option('--no-services', "do not probe Services (default: every ClusterIP from every pod, every NodePort on the external host's node from the external host)")
    .option('--timeout <ms>', 'per-attempt timeout in milliseconds (default 1000)')
    .option('--compare', "compare every cell with the analyzer's verdict, print the cells that disagree; exit 1 on any disagreement")
    .option('--matrix', 'print the reachability matrix of every port (default: a summary)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['txt', 'json']).default('txt'))
    .addHelpText(
      'after',
      `
Prints a summary (cells, reachable, failures). --matrix adds one table per port in the upstream
e2e layout: rows are sources, columns targets, "." reachable, "X" not, "-" not probed. With
--compare, each disagreeing cell is printed with the engine's explanation, then the cells
audit-mode policies would change and one line: "N cells, M disagreements".

Services are probed too: each ClusterIP and port from every pod, each NodePort on every node
from the external host. One connection per cell, answered by the endpoint the kernel chose.
--compare expects an answer when every usable endpoint allows, none when none does; when only
some allow, an answer must come from one that allows, and no answer is not compared (the
connection may have gone to one that denies). Masqueraded connections (NodePort with
externalTrafficPolicy Cluster, a pod reaching itself) are judged at the endpoint with the
address of the node entered.

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
    .description('the per-node enforcement agent: of a lab node (--lab-dir, started by `weir lab up`) or of a Kubernetes node (--kubeconfig or --in-cluster, policy-only beside the CNI)')
    .requiredOption('--node <name>', 'node to enforce (node-0, …; on Kubernetes the Node name, e.g. from spec.nodeName)')
    .option('--lab-dir <dir>', 'lab directory (state.json, desired/)')
    .option('--strict', 'flush conntrack entries a narrowed policy no longer allows')
    .option('--manifests <path...>', 'lab: manifest files or folders to enforce (default: <lab-dir>/desired/)')
    .option('--kubeconfig <file>', 'Kubernetes: the API server and credentials from this kubeconfig')
    .option('--context <name>', 'Kubernetes: the kubeconfig context to use')
    .option('--in-cluster', "Kubernetes: the pod's service account (the DaemonSet)")
    .option('--pod-cidr <cidr...>', "Kubernetes: the node's pod ranges, where pods the agent does not know fail closed (default: the Node's spec.podCIDRs)")
    .option('--allow-unknown-pods', 'Kubernetes: let pods the agent has not synced pass unfiltered (default: they are dropped)')
    .option('--health-address <[host:]port>', 'Kubernetes: /readyz, /livez, /metrics, /status (default 127.0.0.1:9791)')
    .option('--no-health', 'Kubernetes: no local HTTP port')
    .option('--netns <name>', 'apply the ruleset in this network namespace (tests, the lab)')
    .option('--watchdog <seconds>', 'Kubernetes: re-list a kind whose watch sent nothing (not even a bookmark) for this long (default 180)')
    .option('--status-dir <dir>', 'Kubernetes: also write agent-<node>.json there')
    .option('--services', 'Kubernetes: also program Service NAT (ClusterIP, NodePort) from the Services and EndpointSlices, with the balancing loop: weir replaces kube-proxy. Off by default: beside kube-proxy, weir must not also DNAT')
    .option('--config <file>', 'Kubernetes: settings (YAML: failClosedUntilSynced, healthPort, healthHost, watchdogSeconds, podCIDRs, services); flags win')
    .option('--server <url>', 'ship this node\'s flows to a weir server (`weir serve --cluster`); with --token-file (Kubernetes: also the settings\' `server`)')
    .option('--token-file <file>', 'the server\'s bearer token (one line)')
    .option('--ca <file>', 'PEM CA bundle for an https:// --server with its own CA')
    .option('--client-cert <file>', 'PEM client certificate (mutual TLS), with --client-key')
    .option('--client-key <file>', 'PEM private key of --client-cert')
    .option('--buffer-dir <dir>', 'on-disk flow buffer (default <lab-dir>/flows-<node>/; Kubernetes: <status-dir>/flows-<node>/ or /var/lib/weir/flows-<node>/)')
    .option('--buffer-size <MiB>', 'bound of the on-disk flow buffer (default 64)')
    .option('--query-port <port>', 'port of the raw-flow query endpoint on 127.0.0.1 (default: any free port)')
    .option('--query-address <[host:]port>', 'the raw-flow query endpoint on this address (the node\'s, for the server\'s fan-out; the token is required)')
    .action((o: AgentOptions & { bufferSize?: string }) => runAgentCommand({ ...o, ...(o.bufferSize !== undefined ? { bufferMib: o.bufferSize } : {}) }));
}
