// Pod server of the weir lab, run inside a pod's network namespace with
// `ip netns exec <netns> node server.mjs '<json>'`. Plain JavaScript with no dependencies so
// each pod costs one small Node process and no TypeScript loader.
//
// TCP: accept, write "<identity>\n", close. UDP: answer each datagram with "<identity>\n".
// Prints "ready" on stdout once every port listens (the lab waits for it), then never
// writes to stdout again, so the lab can close that pipe and leave the server running.

import dgram from 'node:dgram';
import net from 'node:net';
import process from 'node:process';

const config = JSON.parse(process.argv[2] ?? '{}');
const identity = `${config.name ?? 'unknown'}\n`;
const ports = Array.isArray(config.ports) ? config.ports : [];

function fail(message) {
  process.stdout.write(`error ${message}\n`, () => process.exit(1));
}

function listenTcp(port) {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.setTimeout(5000, () => socket.destroy());
      socket.end(identity);
    });
    server.on('error', reject);
    server.listen({ port, host: '0.0.0.0', backlog: 511 }, () => resolve(server));
  });
}

function listenUdp(port) {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket('udp4');
    socket.on('error', reject);
    socket.on('message', (_msg, rinfo) => {
      socket.send(identity, rinfo.port, rinfo.address, () => undefined);
    });
    socket.bind(port, '0.0.0.0', () => resolve(socket));
  });
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

try {
  await Promise.all(
    ports.map((p) => (p.protocol === 'UDP' ? listenUdp(p.port) : listenTcp(p.port))),
  );
  process.stdout.write('ready\n');
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
