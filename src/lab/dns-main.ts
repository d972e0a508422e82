// The per-node DNS process of the lab: `node dns-main.js RECORDS_FILE [ADDRESS] [PORT]`, run
// inside a node's namespace. Serves the records file (see dns.ts) and re-reads it within
// 200 ms of a change; a file that cannot be read keeps the last good records. Prints "ready"
// once bound, like the pod servers.

import { readFileSync, statSync } from 'node:fs';
import { DnsServer, NODE_DNS_IP, recordsFromJson } from './dns.js';

const [file, address = NODE_DNS_IP, portText = '53'] = process.argv.slice(2);
if (file === undefined) {
  process.stderr.write('usage: dns-main RECORDS_FILE [ADDRESS] [PORT]\n');
  process.exit(2);
}
const server = new DnsServer();
let mtime = -1;
function reload(path: string): void {
  try {
    const m = statSync(path).mtimeMs;
    if (m === mtime) return;
    mtime = m;
    server.setRecords(recordsFromJson(readFileSync(path, 'utf8')));
  } catch (error) {
    process.stderr.write(`dns: ${path}: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}
reload(file);
setInterval(() => reload(file), 200).unref();
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
try {
  await server.listen(address, Number(portText));
  process.stdout.write('ready\n');
} catch (error) {
  process.stdout.write(`error ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
