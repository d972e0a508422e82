// The test API server as its own process, with a state file so that it can be killed and
// restarted where it stopped (the lab's `--source kube` and the restart tests):
//
//   node --import tsx src/testing/apiserver/main.ts --state FILE [--port N] [--kubeconfig PATH]
//        [--token T] [--bookmark-ms MS] [--tls-key KEY.pem --tls-cert CERT.pem]
//
// Prints one line `weir-apiserver listening on URL` when it accepts connections; SIGTERM or
// SIGINT writes the state and exits. Faults, for tests of the process (the lab's `--source
// kube`): SIGUSR1 cuts every open watch mid-stream, SIGUSR2 forces 410 Gone (compacts the
// history), SIGHUP makes the open watches silent.

import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { writeKubeconfig } from './kubeconfig.js';
import { APISERVER_LISTENING, TestApiServer } from './server.js';

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      state: { type: 'string' },
      port: { type: 'string', default: '0' },
      host: { type: 'string', default: '127.0.0.1' },
      kubeconfig: { type: 'string' },
      token: { type: 'string' },
      'bookmark-ms': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-cert': { type: 'string' },
    },
  });
  const tls =
    values['tls-key'] !== undefined && values['tls-cert'] !== undefined
      ? { key: readFileSync(values['tls-key'], 'utf8'), cert: readFileSync(values['tls-cert'], 'utf8') }
      : undefined;
  const server = new TestApiServer({
    ...(tls ? { tls } : {}),
    ...(values.state !== undefined ? { stateFile: values.state } : {}),
    ...(values.token !== undefined ? { token: values.token } : {}),
    ...(values['bookmark-ms'] !== undefined ? { bookmarkIntervalMs: Number(values['bookmark-ms']) } : {}),
  });
  const url = await server.start(Number(values.port), values.host);
  if (values.kubeconfig !== undefined) writeKubeconfig(values.kubeconfig, { server: url, ...(tls ? { ca: tls.cert } : {}), ...(values.token !== undefined ? { token: values.token } : {}) });
  process.stdout.write(`${APISERVER_LISTENING}${url}\n`);
  const stop = (): void => {
    void server.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGUSR1', () => process.stdout.write(`weir-apiserver: fault: cut ${server.dropWatches()} watches\n`));
  process.on('SIGUSR2', () => {
    server.forceGone();
    process.stdout.write('weir-apiserver: fault: history compacted, open watches get 410 Gone\n');
  });
  process.on('SIGHUP', () => process.stdout.write(`weir-apiserver: fault: ${server.silenceWatches()} watches silenced\n`));
}

main().catch((e: unknown) => {
  process.stderr.write(`weir-apiserver: ${(e as Error).message}\n`);
  process.exit(1);
});
