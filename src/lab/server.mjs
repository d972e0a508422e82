// Pod server of the weir lab, run inside a pod's network namespace with
// `ip netns exec <netns> node server.mjs '<json>'`. Plain JavaScript with no dependencies so
// each pod costs one small Node process and no TypeScript loader.
//
// TCP: accept, write "<identity>\n", close. UDP: answer each datagram with "<identity>\n".
// Prints "ready" on stdout once every port listens (the lab waits for it), then never
// writes to stdout again, so the lab can close that pipe and leave the server running.
//
// Behaviour (the kernel here has no netem, so slow and flaky endpoints are made here): when
// `config.control` names a file, it is read at start and re-read whenever it changes
// (checked every 100 ms), as JSON `{ delayMs, errorRate, stall: { everyMs, forMs } }` (see
// src/lab/behaviour.ts, which writes it): every reply waits `delayMs`; a share `errorRate`
// of connections is reset at once (TCP RST, a fast failure) and of datagrams left unanswered;
// during the first `forMs` of every `everyMs` window replies are held until the window ends
// (an intermittent stall); with `concurrency`, at most that many TCP replies are in service at
// once and the rest wait in line (a backend of limited capacity, whose latency grows with its
// load). A missing or invalid file means no delay and no errors.

import dgram from 'node:dgram';
import { readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import process from 'node:process';
import { setInterval, setTimeout } from 'node:timers';

const config = JSON.parse(process.argv[2] ?? '{}');
const identity = `${config.name ?? 'unknown'}\n`;
const ports = Array.isArray(config.ports) ? config.ports : [];

const NORMAL = { delayMs: 0, errorRate: 0, stall: undefined, concurrency: undefined };
let active = 0;
const waiting = [];
let behaviour = NORMAL;
let controlMtime = -1;

function number(v, lo, hi) {
  return typeof v === 'number' && Number.isFinite(v) && v >= lo && v <= hi ? v : undefined;
}

function readControl() {
  if (typeof config.control !== 'string') return;
  let mtime;
  try {
    mtime = statSync(config.control).mtimeMs;
  } catch {
    mtime = 0;
  }
  if (mtime === controlMtime) return;
  controlMtime = mtime;
  if (mtime === 0) {
    behaviour = NORMAL;
    return;
  }
  try {
    const raw = JSON.parse(readFileSync(config.control, 'utf8'));
    const everyMs = number(raw.stall?.everyMs, 1, 3_600_000);
    const forMs = number(raw.stall?.forMs, 0, 3_600_000);
    behaviour = {
      delayMs: number(raw.delayMs, 0, 600_000) ?? 0,
      errorRate: number(raw.errorRate, 0, 1) ?? 0,
      stall: everyMs !== undefined && forMs !== undefined && forMs > 0 ? { everyMs, forMs } : undefined,
      concurrency: number(raw.concurrency, 1, 100_000),
    };
    process.stderr.write(`behaviour ${JSON.stringify(behaviour)}\n`);
  } catch (error) {
    behaviour = NORMAL;
    process.stderr.write(`invalid control file ${config.control}: ${error instanceof Error ? error.message : String(error)}\n`);
  }
}

/** Milliseconds to wait before replying (the delay, plus the rest of a stall window). */
function waitMs() {
  let ms = behaviour.delayMs;
  if (behaviour.stall) {
    const at = (Date.now() + ms) % behaviour.stall.everyMs;
    if (at < behaviour.stall.forMs) ms += behaviour.stall.forMs - at;
  }
  return ms;
}

function later(ms, fn) {
  if (ms <= 0) fn();
  else setTimeout(fn, ms);
}

function fail(message) {
  process.stdout.write(`error ${message}\n`, () => process.exit(1));
}

function listenTcp(port) {
  return new Promise((resolve, reject) => {
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      if (behaviour.errorRate > 0 && Math.random() < behaviour.errorRate) {
        socket.resetAndDestroy();
        return;
      }
      const serve = () => {
        // A queued request whose client has gone (timed out) takes no slot: its answer would
        // go nowhere, and serving it would hold up the live ones behind it.
        if (socket.destroyed) {
          const next = waiting.shift();
          if (next) next();
          return;
        }
        active++;
        later(waitMs(), () => {
          socket.end(identity);
          active--;
          const next = waiting.shift();
          if (next) next();
        });
      };
      if (behaviour.concurrency !== undefined && active >= behaviour.concurrency) waiting.push(serve);
      else serve();
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
      if (behaviour.errorRate > 0 && Math.random() < behaviour.errorRate) return;
      later(waitMs(), () => socket.send(identity, rinfo.port, rinfo.address, () => undefined));
    });
    socket.bind(port, '0.0.0.0', () => resolve(socket));
  });
}

process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));

readControl();
if (typeof config.control === 'string') setInterval(readControl, 100).unref();

try {
  await Promise.all(
    ports.map((p) => (p.protocol === 'UDP' ? listenUdp(p.port) : listenTcp(p.port))),
  );
  process.stdout.write('ready\n');
} catch (error) {
  fail(error instanceof Error ? error.message : String(error));
}
