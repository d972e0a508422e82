// Prober of the weir lab, run once per source namespace with
// `ip netns exec <netns> node prober.mjs`. Reads the probe list as JSON on stdin, probes with
// bounded concurrency and writes one JSON array of results on stdout.
//
// A cell is reachable only when the target's server answered: for TCP the connection was
// established and the reply arrived; for UDP a reply datagram arrived (one retry, since a
// lost datagram is not a verdict). "refused" (RST / ICMP port unreachable) and "timeout"
// (silently dropped) are kept apart so a failure can be explained.

import dgram from 'node:dgram';
import net from 'node:net';
import { Buffer } from 'node:buffer';
import process from 'node:process';
import { clearTimeout, setTimeout } from 'node:timers';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

function now() {
  return Number(process.hrtime.bigint() / 1000n) / 1000;
}

function probeTcp(target, timeoutMs) {
  return new Promise((resolve) => {
    const started = now();
    let reply = '';
    let connected = false;
    let done = false;
    const socket = net.connect({ host: target.ip, port: target.port });
    const finish = (ok, error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ id: target.id, ok, reply: reply.trim() || undefined, error, ms: Math.round(now() - started) });
    };
    const timer = setTimeout(() => finish(false, connected ? 'no-reply' : 'timeout'), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => {
      connected = true;
    });
    socket.on('data', (data) => {
      reply += data;
    });
    socket.on('end', () => finish(reply.length > 0, reply.length > 0 ? undefined : 'no-reply'));
    socket.on('error', (error) => finish(false, error.code === 'ECONNREFUSED' ? 'refused' : error.code ?? error.message));
  });
}

function probeUdp(target, timeoutMs, attempts) {
  return new Promise((resolve) => {
    const started = now();
    const socket = dgram.createSocket('udp4');
    let done = false;
    let sent = 0;
    let timer;
    const finish = (ok, reply, error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.close();
      resolve({ id: target.id, ok, reply, error, ms: Math.round(now() - started) });
    };
    const send = () => {
      if (sent >= attempts) {
        finish(false, undefined, 'timeout');
        return;
      }
      sent++;
      socket.send(`probe ${target.id}\n`, (error) => {
        if (error) finish(false, undefined, error.code ?? error.message);
      });
      timer = setTimeout(send, timeoutMs);
    };
    socket.on('message', (msg) => finish(true, msg.toString('utf8').trim()));
    // A connected UDP socket reports ICMP port unreachable as ECONNREFUSED.
    socket.on('error', (error) => finish(false, undefined, error.code === 'ECONNREFUSED' ? 'refused' : error.code ?? error.message));
    socket.connect(target.port, target.ip, send);
  });
}

async function main() {
  const input = await readStdin();
  const targets = Array.isArray(input.targets) ? input.targets : [];
  const timeoutMs = Number(input.timeoutMs ?? 1000);
  const udpAttempts = Number(input.udpAttempts ?? 2);
  const concurrency = Math.max(1, Math.min(Number(input.concurrency ?? 64), 1024));
  const results = new Array(targets.length);
  let next = 0;
  const worker = async () => {
    while (next < targets.length) {
      const i = next++;
      const t = targets[i];
      results[i] = t.protocol === 'UDP' ? await probeUdp(t, timeoutMs, udpAttempts) : await probeTcp(t, timeoutMs);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  process.stdout.write(JSON.stringify(results));
}

main().catch((error) => {
  process.stderr.write(`prober: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
});
