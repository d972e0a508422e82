// Active health prober of the weir agent's balancing loop (src/agent/lb-loop.ts), run inside
// the node's network namespace with `ip netns exec <netns> node lb-probe.mjs` (or directly on
// a real node). Long-lived: reads one JSON request per line on stdin,
//   { "id": 7, "timeoutMs": 400, "targets": [{ "key": "10.244.1.5:8080", "ip": "10.244.1.5", "port": 8080, "http": false }] }
// probes every target at once and writes one JSON line on stdout,
//   { "id": 7, "results": [{ "key": "10.244.1.5:8080", "ok": true, "ms": 12.3 }] }
//
// A TCP probe passes when the connection is accepted and then answered or closed cleanly (the
// lab's servers write their identity and close); a reset, a refusal or no answer within the
// timeout fails it. An HTTP probe sends `GET / HTTP/1.0` and passes on a status below 500.
// Plain JavaScript with no dependencies: one small process per agent, no TypeScript loader.

import net from 'node:net';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';

function now() {
  return Number(process.hrtime.bigint()) / 1e6;
}

function probe(target, timeoutMs) {
  return new Promise((resolve) => {
    const started = now();
    let reply = '';
    let done = false;
    const socket = net.connect({ host: target.ip, port: target.port });
    const finish = (ok, error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const ms = Math.round((now() - started) * 100) / 100;
      resolve(error ? { key: target.key, ok, ms, error } : { key: target.key, ok, ms });
    };
    const timer = setTimeout(() => finish(false, 'timeout'), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      if (target.http) socket.write(`GET / HTTP/1.0\r\nHost: ${target.ip}\r\nUser-Agent: weir-probe\r\n\r\n`);
    });
    socket.on('data', (data) => {
      reply += data;
      if (target.http) {
        const m = /^HTTP\/\d\.\d (\d{3})/.exec(reply);
        if (m) finish(Number(m[1]) < 500, Number(m[1]) < 500 ? undefined : `status ${m[1]}`);
      }
    });
    socket.on('end', () => finish(!target.http || reply.length > 0, target.http && reply.length === 0 ? 'no-reply' : undefined));
    socket.on('error', (error) => finish(false, error.code ?? error.message));
  });
}

let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  buf += chunk;
  let i;
  while ((i = buf.indexOf('\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (!line.trim()) continue;
    let request;
    try {
      request = JSON.parse(line);
    } catch {
      continue;
    }
    const timeoutMs = Number(request.timeoutMs) > 0 ? Number(request.timeoutMs) : 400;
    const targets = Array.isArray(request.targets) ? request.targets : [];
    void Promise.all(targets.map((t) => probe(t, timeoutMs))).then((results) => {
      process.stdout.write(`${JSON.stringify({ id: request.id, results })}\n`);
    });
  }
});
process.stdin.on('end', () => process.exit(0));
