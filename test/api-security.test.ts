// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// The visibility server's access control over real sockets: token (bearer, login cookie), the
// loopback Host check, security headers, TLS with a certificate made by openssl here, and
// `weir serve` refusing what it must refuse (a non-loopback bind without a token — tried only
// inside a network namespace of its own, so nothing ever listens on a real interface — bad
// token, certificate, store and alert files) with exit status 2 and one sentence.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { createServer } from '../src/api/server.js';
import { runFlowsCommand, type CliIo } from '../src/flows/cli.js';
import { FlowPipeline } from '../src/flows/pipeline.js';
import { readSse } from '../src/flows/sse-client.js';
import { SqliteFlowStore } from '../src/flows/sqlite-store.js';
import { podRecord, syntheticCluster } from '../src/flows/synthetic.js';

const WEIR = resolve('bin/weir.js');
const dir = mkdtempSync(join(tmpdir(), 'weir-sec-'));
const TOKEN = 'a-test-token-0123456789abcdef';
const c = syntheticCluster(3, 3, 2);
let store: SqliteFlowStore;
let pipeline: FlowPipeline;
let app: FastifyInstance;
let port = 0;
let base = '';

before(async () => {
  store = new SqliteFlowStore(join(dir, 'flows.db'));
  pipeline = new FlowPipeline({ store, flushMs: 50 }).start();
  app = createServer({ store, pipeline, uiDir: join(dir, 'no-ui'), access: { token: TOKEN, loopbackOnly: true } });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const addr = app.server.address();
  assert.ok(addr && typeof addr === 'object');
  port = addr.port;
  base = `http://127.0.0.1:${port}`;
  pipeline.ingest([podRecord(c.pods[0]!, c.pods[7]!)]);
  pipeline.flush();
});

after(async () => {
  await app.close();
  pipeline.stop();
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw request, so the Host header can be anything (fetch always sends the real one). */
function raw(path: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  return new Promise((done, fail) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => done({ status: res.statusCode ?? 0, headers: res.headers, text }));
    });
    req.on('error', fail);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const SECURITY_HEADERS = ['content-security-policy', 'x-content-type-options', 'x-frame-options', 'referrer-policy'];

test('a missing or wrong token gets 401; the right bearer token passes; /api/health stays open', async () => {
  const none = await raw('/api/flows');
  assert.equal(none.status, 401);
  assert.match(String(none.headers['www-authenticate']), /^Bearer/);
  assert.match(none.text, /needs a token/);
  assert.equal((await raw('/api/flows', { authorization: 'Bearer wrong-token-wrong-token' })).status, 401);
  assert.equal((await raw('/metrics', { authorization: `Basic ${TOKEN}` })).status, 401);
  assert.equal((await raw('/api/stream', {})).status, 401);
  const ok = await raw('/api/flows', { authorization: `Bearer ${TOKEN}` });
  assert.equal(ok.status, 200);
  assert.equal((JSON.parse(ok.text) as { count: number }).count, 1);
  assert.equal((await raw('/api/health')).status, 200);
  const m = await raw('/metrics', { authorization: `Bearer ${TOKEN}` });
  assert.match(m.text, /weir_http_auth_failures_total\{reason="token"\} [1-9]/);
});

test('a browser is sent to /login; the token there gives a session cookie that the API and the stream accept', async () => {
  const page = await raw('/', { accept: 'text/html' });
  assert.equal(page.status, 303);
  assert.equal(page.headers.location, '/login');
  const form = await raw('/login');
  assert.equal(form.status, 200);
  assert.match(form.text, /<form method="post" action="\/login">/);
  const wrong = await raw('/login', { 'content-type': 'application/x-www-form-urlencoded' }, 'POST', 'token=nope');
  assert.equal(wrong.status, 401);
  const good = await raw('/login', { 'content-type': 'application/x-www-form-urlencoded' }, 'POST', `token=${encodeURIComponent(TOKEN)}`);
  assert.equal(good.status, 303);
  const setCookie = String(good.headers['set-cookie']);
  assert.match(setCookie, /^weir_session=[^;]+; Path=\/; HttpOnly; SameSite=Strict/);
  assert.ok(!setCookie.includes(TOKEN), 'the cookie is not the token itself');
  const cookie = setCookie.split(';')[0] ?? '';
  assert.equal((await raw('/api/flows', { cookie })).status, 200);
  assert.equal((await raw('/api/flows', { cookie: 'weir_session=forged' })).status, 401);
  // The live stream with the bearer header (what `weir flows --follow` sends).
  const ac = new AbortController();
  for await (const ev of readSse(`${base}/api/stream`, ac.signal, { authorization: `Bearer ${TOKEN}` })) {
    assert.equal(ev.event, 'snapshot');
    break;
  }
  ac.abort();
});

test('weir flows sends its token; without one it is refused with exit 2', async () => {
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => (out += s), err: (s) => (err += s) };
  assert.equal(await runFlowsCommand({ server: base, token: TOKEN, output: 'json' }, io), 0);
  assert.equal(out.trim().split('\n').length, 1);
  assert.equal(await runFlowsCommand({ server: base }, io), 2);
  assert.match(err, /refused the request.*--token-file/);
});

test('on loopback a foreign Host header gets 403 (DNS rebinding); loopback names pass', async () => {
  for (const host of ['evil.example', 'evil.example:80', `attacker.test:${port}`, '10.0.0.1', '127.0.0.1.evil.example']) {
    const r = await raw('/api/health', { host });
    assert.equal(r.status, 403, `Host "${host}"`);
    assert.match(r.text, /not a loopback name/);
  }
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'localhost', `[::1]:${port}`]) {
    assert.equal((await raw('/api/health', { host })).status, 200, `Host "${host}"`);
  }
});

test('security headers are on every response: 200, 401, 403, 404 and the event stream', async () => {
  const responses = [
    await raw('/api/health'),
    await raw('/api/flows'),
    await raw('/api/health', { host: 'evil.example' }),
    await raw('/no/such/route', { authorization: `Bearer ${TOKEN}` }),
  ];
  const stream = await new Promise<Record<string, string | string[] | undefined>>((done, fail) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/api/stream', headers: { authorization: `Bearer ${TOKEN}` } }, (res) => {
      done(res.headers);
      res.destroy();
    });
    req.on('error', fail);
    req.end();
  });
  for (const h of [...responses.map((r) => r.headers), stream]) {
    for (const name of SECURITY_HEADERS) assert.ok(h[name], `${name} missing`);
    assert.equal(h['x-content-type-options'], 'nosniff');
    assert.equal(h['x-frame-options'], 'DENY');
    assert.equal(h['referrer-policy'], 'no-referrer');
    assert.match(String(h['content-security-policy']), /default-src 'self'.*script-src 'self'.*frame-ancestors 'none'/);
  }
});

test('TLS: weir serve --tls-cert/--tls-key serves HTTPS with a self-signed certificate; mismatched files are refused', async () => {
  const tlsDir = join(dir, 'tls');
  mkdirSync(tlsDir);
  const cert = join(tlsDir, 'cert.pem');
  const key = join(tlsDir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  const otherKey = join(tlsDir, 'other.pem');
  execFileSync('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', otherKey], { stdio: 'ignore' });
  const tokenFile = join(tlsDir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`);
  const labDir = join(dir, 'lab-tls');
  mkdirSync(labDir);

  const mismatch = spawnSync(process.execPath, [WEIR, 'serve', '--lab-dir', labDir, '--port', '0', '--tls-cert', cert, '--tls-key', otherKey], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(mismatch.status, 2, mismatch.stderr);
  assert.match(mismatch.stderr, /--tls-key: .* does not belong to the certificate/);
  const half = spawnSync(process.execPath, [WEIR, 'serve', '--lab-dir', labDir, '--port', '0', '--tls-cert', cert], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(half.status, 2);
  assert.match(half.stderr, /--tls-cert and --tls-key go together/);

  const child = spawn(process.execPath, [WEIR, 'serve', '--lab-dir', labDir, '--port', '0', '--tls-cert', cert, '--tls-key', key, '--token-file', tokenFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    const url = await new Promise<string>((done, fail) => {
      let out = '';
      const t = setTimeout(() => fail(new Error(`weir serve did not start: ${out}`)), 60_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /listening on (https:\/\/\S+)/.exec(out);
        if (m?.[1]) {
          clearTimeout(t);
          done(m[1]);
        }
      });
      child.on('exit', (code) => fail(new Error(`weir serve exited ${String(code)}: ${out}`)));
    });
    const u = new URL(url);
    const get = (headers: Record<string, string>): Promise<{ status: number; hsts: string | undefined; authorized: boolean }> =>
      new Promise((done, fail) => {
        const req = httpsRequest({ host: u.hostname, port: Number(u.port), path: '/api/flows', ca: execFileSync('cat', [cert]), headers }, (res) => {
          const socket = res.socket as import('node:tls').TLSSocket;
          done({ status: res.statusCode ?? 0, hsts: res.headers['strict-transport-security'] as string | undefined, authorized: socket.authorized });
          res.resume();
        });
        req.on('error', fail);
        req.end();
      });
    const ok = await get({ authorization: `Bearer ${TOKEN}` });
    assert.equal(ok.status, 200);
    assert.ok(ok.authorized, 'the certificate verifies against itself as CA');
    assert.match(ok.hsts ?? '', /max-age=/);
    assert.equal((await get({})).status, 401);
    // Plain HTTP on the TLS port gets no API answer.
    await assert.rejects(fetch(`http://127.0.0.1:${u.port}/api/health`));
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
});

test('weir serve refuses a non-loopback bind without a token (inside a private network namespace)', () => {
  const labDir = join(dir, 'lab-exposed');
  mkdirSync(labDir);
  // unshare -n: a fresh network namespace holding only a down `lo`; even a broken check could
  // not expose anything.
  const r = spawnSync('unshare', ['-n', process.execPath, WEIR, 'serve', '--lab-dir', labDir, '--host', '0.0.0.0', '--port', '7680'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2, `stdout: ${r.stdout} stderr: ${r.stderr}`);
  assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0 without a token: .*--token-file/);
  assert.equal(r.stderr.trim().split('\n').length, 1, 'one sentence');
  assert.doesNotMatch(r.stdout, /listening/);
  const short = join(dir, 'short-token');
  writeFileSync(short, 'abc\n');
  const s = spawnSync('unshare', ['-n', process.execPath, WEIR, 'serve', '--lab-dir', labDir, '--host', '0.0.0.0', '--port', '7680', '--token-file', short], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(s.status, 2);
  assert.match(s.stderr, /at least 16 characters/);
});

test('bad store and alert paths are input errors (exit 2, one sentence); weir flows --server "not a url" exits 2', () => {
  const labDir = join(dir, 'lab-bad');
  mkdirSync(labDir);
  const folder = join(dir, 'a-folder');
  mkdirSync(folder);
  const junk = join(dir, 'junk.bin');
  writeFileSync(junk, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)));
  const serve = (...args: string[]) => spawnSync(process.execPath, [WEIR, 'serve', '--lab-dir', labDir, '--port', '0', ...args], { encoding: 'utf8', timeout: 60_000 });
  const cases: [string[], RegExp][] = [
    [['--store', folder], /--store: .* is a folder/],
    [['--store', junk], /flow store .* is not a weir SQLite database/],
    [['--alerts', folder], /--alerts: .* is a folder/],
    [['--alerts', junk], /is not a text file/],
    [['--alerts', join(dir, 'missing.yaml')], /no such file/],
  ];
  for (const [args, msg] of cases) {
    const r = serve(...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, msg);
    assert.doesNotMatch(r.stderr, /internal error/);
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line: ${r.stderr}`);
  }
  const webhookFile = join(dir, 'file-webhook.yaml');
  writeFileSync(webhookFile, 'webhook: { url: "file:///etc/passwd" }\nrules: []\n');
  const w = serve('--alerts', webhookFile);
  assert.equal(w.status, 2);
  assert.match(w.stderr, /webhook\.url: must be an http:\/\/ or https:\/\/ URL/);
  const f = spawnSync(process.execPath, [WEIR, 'flows', '--server', 'not a url'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(f.status, 2);
  assert.match(f.stderr, /--server: must be an http:\/\/ or https:\/\/ URL/);
});
