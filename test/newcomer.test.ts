// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// What a newcomer does, from a fresh clone: the README's set-up command (`npm ci`), then
// `weir serve`, then the dashboard in a browser. The clone is of the current checkout's HEAD
// (commit first), in a temporary folder that is removed afterwards. `npm ci` builds
// better-sqlite3 from source and the dashboard (the `prepare` step), so this takes minutes;
// npm's cache is used as it is (`--prefer-offline`), nothing else is downloaded. The compile
// took 9 min on the shared 2-vCPU machine with other work running and over 25 min at a load
// average of 30, hence the generous timeouts.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { launchChromium } from './helpers/browser.js';

test('a fresh clone: npm ci, then weir serve shows the dashboard (the map, not "not built"), with no engine or install-script warnings', { timeout: 3_600_000 }, async () => {
  const work = mkdtempSync(join(tmpdir(), 'weir-newcomer-'));
  const clone = join(work, 'weir');
  let serve: ReturnType<typeof spawn> | undefined;
  try {
    const git = spawnSync('git', ['clone', '--quiet', resolve('.'), clone], { encoding: 'utf8' });
    assert.equal(git.status, 0, git.stderr);
    assert.ok(!existsSync(join(clone, 'src', 'ui', 'web', 'dist')), 'the clone has no built dashboard');

    const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true' };
    delete env.npm_config_prefix;
    const ci = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: clone, encoding: 'utf8', env, timeout: 3_000_000 });
    const output = `${ci.stdout}\n${ci.stderr}`;
    assert.equal(ci.status, 0, `npm ci failed:\n${output.slice(-4000)}`);
    assert.doesNotMatch(output, /EBADENGINE/, 'no dependency refuses this Node');
    assert.doesNotMatch(output, /npm warn install-scripts/, 'every install script is reviewed in allowScripts');
    assert.ok(existsSync(join(clone, 'src', 'ui', 'web', 'dist', 'index.html')), `npm ci built the dashboard:\n${output.slice(-2000)}`);

    const labDir = join(work, 'lab');
    mkdirSync(labDir);
    serve = spawn(process.execPath, [join(clone, 'bin', 'weir.js'), 'serve', '--lab-dir', labDir, '--port', '0'], { cwd: clone, stdio: ['ignore', 'pipe', 'pipe'] });
    const child = serve;
    const printed = await new Promise<string>((done, fail) => {
      let out = '';
      const t = setTimeout(() => fail(new Error(`weir serve did not start: ${out}`)), 60_000);
      child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (/dashboard: http:\/\/\S+\//.test(out)) {
          clearTimeout(t);
          done(out);
        }
      });
      child.once('exit', (code) => fail(new Error(`weir serve exited ${String(code)}: ${out}`)));
    });
    const url = /dashboard: (http:\/\/\S+\/)/.exec(printed)?.[1] ?? '';
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/$/, 'weir serve prints the dashboard URL');

    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const violations: string[] = [];
      page.on('console', (m) => {
        if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) violations.push(m.text());
      });
      page.on('response', (r) => {
        if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) violations.push(`${r.status()} ${r.url()}`);
      });
      const res = await page.goto(url, { waitUntil: 'domcontentloaded', timeout: 30_000 });
      assert.equal(res?.status(), 200);
      await page.waitForSelector('[data-testid=map]', { timeout: 30_000 });
      await page.waitForSelector('[data-testid=status].up', { timeout: 30_000 });
      assert.doesNotMatch(await page.content(), /not built/);
      assert.deepEqual(violations, [], 'no console errors (CSP violations among them)');
    } finally {
      await browser.close();
    }
  } finally {
    if (serve && serve.exitCode === null) {
      const exited = new Promise((r) => serve?.once('exit', r));
      serve.kill('SIGTERM');
      await exited;
    }
    rmSync(work, { recursive: true, force: true });
  }
});
