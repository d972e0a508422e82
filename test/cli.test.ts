// suite: integration (no root; real processes, sockets or a browser: `npm run test:integration`)
// The real CLI: `node bin/weir.js …` in a child process, exact output on fixtures whose
// connectivity is known by hand, every format, exit codes, and clear errors on bad input.

import { weir } from './helpers/cli.js';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CommanderError } from 'commander';
import { CliError } from '../src/cli/exit.js';
import { reportError } from '../src/cli/run.js';
import { ValidationError } from '../src/model/diagnostics.js';

const BASIC = 'test/fixtures/cli/basic';
const LINT = 'test/fixtures/cli/lint';
const BAD_YAML = 'test/fixtures/cli/bad/invalid-yaml.yaml';
const BAD_CIDR = 'test/fixtures/cli/bad/invalid-cidr.yaml';

/** Worked out by hand from the fixture's comments; see test/fixtures/cli/basic. */
const BASIC_LINES = [
  '0.0.0.0-255.255.255.255[External] => app/client[Pod] : All Connections',
  '0.0.0.0-9.255.255.255[External] => app/web[Deployment] : TCP 8080',
  '11.0.0.0-255.255.255.255[External] => app/web[Deployment] : TCP 8080',
  'app/client[Pod] => 0.0.0.0-255.255.255.255[External] : UDP 53',
  'app/db[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections',
  'app/db[Deployment] => app/client[Pod] : All Connections',
  'app/web[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections',
  'app/web[Deployment] => app/client[Pod] : All Connections',
  'app/web[Deployment] => app/db[Deployment] : TCP 5432',
];

/** No stack trace and no Node internals in what users see. */
function assertNoStack(text: string): void {
  assert.doesNotMatch(text, /\n\s+at /, text);
  assert.doesNotMatch(text, /node:internal/, text);
}

describe('weir analyze', () => {
  it('prints the exact connectivity list (txt) and exits 0', async () => {
    const r = await weir(['analyze', BASIC]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${BASIC_LINES.join('\n')}\n`);
    assert.equal(r.stderr, '');
  });

  it('json: array of {src, dst, conn}', async () => {
    const r = await weir(['analyze', BASIC, '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { src: string; dst: string; conn: string }[];
    assert.deepEqual(
      rows.map((x) => `${x.src} => ${x.dst} : ${x.conn}`),
      BASIC_LINES,
    );
    assert.deepEqual(Object.keys(rows[0]), ['src', 'dst', 'conn']);
  });

  it('csv: header and one row per line', async () => {
    const r = await weir(['analyze', BASIC, '-f', 'csv']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trimEnd().split('\n');
    assert.equal(rows[0], 'src,dst,conn');
    assert.equal(rows.length, BASIC_LINES.length + 1);
    assert.equal(rows[9], 'app/web[Deployment],app/db[Deployment],TCP 5432');
  });

  it('md: a table with one row per line', async () => {
    const r = await weir(['analyze', BASIC, '--format', 'md']);
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout.trimEnd().split('\n');
    assert.deepEqual(rows.slice(0, 2), ['| src | dst | conn |', '|-----|-----|------|']);
    assert.equal(rows[3], '| 0.0.0.0-9.255.255.255[External] | app/web[Deployment] | TCP 8080 |');
    assert.equal(rows.length, BASIC_LINES.length + 2);
  });

  it('dot: namespace cluster, red externals, labelled edges', async () => {
    const r = await weir(['analyze', BASIC, '--format', 'dot']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^digraph \{\n\tsubgraph "cluster_app" \{\n/);
    assert.match(r.stdout, /\t\t"app\/web\[Deployment\]" \[label="web\[Deployment\]" color="blue" fontcolor="blue"\]\n/);
    assert.match(r.stdout, /\t"11\.0\.0\.0-255\.255\.255\.255\[External\]" \[label="11\.0\.0\.0-255\.255\.255\.255\[External\]" color="red2" fontcolor="red2"\]\n/);
    assert.match(r.stdout, /\t"app\/web\[Deployment\]" -> "app\/db\[Deployment\]" \[label="TCP 5432" color="gold2" fontcolor="darkgreen" weight=1\]\n/);
    assert.equal(r.stdout.match(/ -> /g)?.length, BASIC_LINES.length);
    assert.ok(r.stdout.endsWith('}\n'));
  });

  it('--focus-workload keeps the lines touching the workload', async () => {
    const r = await weir(['analyze', BASIC, '--focus-workload', 'app/db']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'app/db[Deployment] => 0.0.0.0-255.255.255.255[External] : All Connections',
        'app/db[Deployment] => app/client[Pod] : All Connections',
        'app/web[Deployment] => app/db[Deployment] : TCP 5432',
        '',
      ].join('\n'),
    );
    const byName = await weir(['analyze', BASIC, '--focus-workload', 'db']);
    assert.equal(byName.stdout, r.stdout);
  });

  it('--focus-workload on an unknown workload is a clear input error', async () => {
    const r = await weir(['analyze', BASIC, '--focus-workload', 'app/nope']);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^weir: error: --focus-workload "app\/nope" matches no workload/);
    assertNoStack(r.stderr);
  });

  it('--explain names the allowing rules, or the default', async () => {
    const r = await weir(['analyze', BASIC, '--focus-workload', 'client', '--explain']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        '0.0.0.0-255.255.255.255[External] => app/client[Pod] : All Connections',
        '    egress:  outside the cluster: no egress policy applies',
        '    ingress: default allow (not isolated)',
        'app/client[Pod] => 0.0.0.0-255.255.255.255[External] : UDP 53',
        '    egress:  NetworkPolicy app/client-egress egress[1]',
        '    ingress: outside the cluster: no ingress policy applies',
        'app/db[Deployment] => app/client[Pod] : All Connections',
        '    egress:  default allow (not isolated)',
        '    ingress: default allow (not isolated)',
        'app/web[Deployment] => app/client[Pod] : All Connections',
        '    egress:  default allow (not isolated)',
        '    ingress: default allow (not isolated)',
        '',
      ].join('\n'),
    );
  });

  it('--explain in json adds an explanation per line', async () => {
    const r = await weir(['analyze', BASIC, '--focus-workload', 'app/db', '--explain', '-f', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const rows = JSON.parse(r.stdout) as { src: string; dst: string; explanation: { ingress: { policy?: string; rule?: string }[] } }[];
    const toDb = rows.find((x) => x.dst === 'app/db[Deployment]');
    assert.deepEqual(toDb?.explanation.ingress.map((x) => [x.policy, x.rule]), [['NetworkPolicy app/db-from-web', 'ingress[0]']]);
  });

  describe('-o FILE', () => {
    let dir = '';
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'weir-cli-'));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('writes the result to the file, nothing to stdout', async () => {
      const file = join(dir, 'out.txt');
      const r = await weir(['analyze', BASIC, '-o', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, '');
      assert.equal(await readFile(file, 'utf8'), `${BASIC_LINES.join('\n')}\n`);
    });

    it('an unwritable file is a one-line error', async () => {
      const r = await weir(['analyze', BASIC, '-o', join(dir, 'missing', 'out.txt')]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^weir: error: cannot write .*missing\/out\.txt: /);
      assertNoStack(r.stderr);
    });
  });

  it('analyzes the demo', { skip: !existsSync('examples/demo') && 'examples/demo not present' }, async () => {
    const r = await weir(['analyze', 'examples/demo']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.ok(lines.length > 0);
    for (const l of lines) assert.match(l, /^\S+\[[A-Za-z]+\] => \S+\[[A-Za-z]+\] : .+$/);
    assert.deepEqual([...lines].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), lines, 'lines are sorted');
    assert.ok(!lines.some((l) => l.endsWith(': No Connections')));
    assert.ok(!lines.some((l) => {
      const [src, rest] = l.split(' => ');
      return rest.startsWith(`${src} :`);
    }), 'no self-loops');
  });
});

describe('bad input', () => {
  it('invalid YAML: file and line on stderr, exit 2, no stack', async () => {
    const r = await weir(['analyze', BAD_YAML]);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^test\/fixtures\/cli\/bad\/invalid-yaml\.yaml:\d+: error: invalid YAML: .* \[invalid-yaml\]$/m);
    assert.match(r.stderr, /^weir: \d+ errors? in the input: the analysis covers the valid objects only$/m);
    assertNoStack(r.stderr);
  });

  it('invalid CIDR: file, object and field; the valid objects are still analyzed', async () => {
    const r = await weir(['analyze', BAD_CIDR]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^test\/fixtures\/cli\/bad\/invalid-cidr\.yaml:\d+: error: NetworkPolicy app\/bad-cidr: spec\.egress\[0\]\.to\[0\]\.ipBlock\.cidr: invalid CIDR "10\.0\.0\.300\/8".* \[invalid-cidr\]$/m,
    );
    assert.match(r.stderr, /NetworkPolicy app\/bad-except: spec\.egress\[0\]\.to\[0\]\.ipBlock\.except\[0\]: .* \[except-outside-cidr\]$/m);
    // Both policies are invalid, but they certainly isolate web for egress: whatever their
    // invalid rules might allow is UNKNOWN (issue 8: never fail open), ingress stays open.
    assert.equal(
      r.stdout,
      '0.0.0.0-255.255.255.255[External] => app/web[Deployment] : All Connections\n' +
        'app/web[Deployment] => 0.0.0.0-255.255.255.255[External] : UNKNOWN All Connections (invalid: NetworkPolicy app/bad-cidr spec.egress[0].to[0].ipBlock.cidr; NetworkPolicy app/bad-except spec.egress[0].to[0].ipBlock.except[0])\n',
    );
    assertNoStack(r.stderr);
  });

  it('--quiet keeps errors and drops notices', async () => {
    const r = await weir(['--quiet', 'analyze', BAD_CIDR]);
    assert.equal(r.code, 2);
    assert.doesNotMatch(r.stderr, /notice:/);
    assert.match(r.stderr, /error:/);
  });

  it('a missing path is an input error', async () => {
    const r = await weir(['analyze', 'test/fixtures/cli/does-not-exist']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /does-not-exist: error: no such file or directory/);
    assertNoStack(r.stderr);
  });

  it('usage errors exit 2 with commander\'s message', async () => {
    const noPath = await weir(['analyze']);
    assert.equal(noPath.code, 2);
    assert.match(noPath.stderr, /missing required argument 'paths'/);
    const badFormat = await weir(['analyze', BASIC, '--format', 'xml']);
    assert.equal(badFormat.code, 2);
    assert.match(badFormat.stderr, /xml.*Allowed choices are txt, json, csv, md, dot/);
    const unknown = await weir(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  });
});

describe('weir explain', () => {
  it('prints verdict and reasons; exit 0 when allowed', async () => {
    const r = await weir(['explain', BASIC, '--from', 'app/web', '--to', 'app/db', '--port', '5432/TCP']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        'app/web[Deployment] => app/db[Deployment] : TCP 5432',
        'verdict: ALLOWED',
        '  egress (app/web[Deployment]): Allowed',
        '    - no policy denies this for app/web[Deployment]: default allow',
        '  ingress (app/db[Deployment]): Allowed',
        '    - NetworkPolicy app/db-from-web ingress[0] allows',
        '',
      ].join('\n'),
    );
  });

  it('exit 0 on a deny too, 1 with --fail-on-deny', async () => {
    const args = ['explain', BASIC, '--from', 'app/client', '--to', 'app/web', '--port', '8080'];
    const r = await weir(args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^verdict: DENIED$/m);
    assert.match(r.stdout, /app\/web\[Deployment\] is isolated for ingress by NetworkPolicy app\/web-from-outside and no rule of those policies allows this: default deny/);
    const strict = await weir([...args, '--fail-on-deny']);
    assert.equal(strict.code, 1);
  });

  it('json, named ports and external addresses', async () => {
    const r = await weir(['explain', BASIC, '--from', '8.8.8.8', '--to', 'app/web', '--port', 'http', '--format', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const e = JSON.parse(r.stdout) as { verdict: string; port: number; protocol: string; ingress: { decidedBy: { policy?: string } } };
    assert.equal(e.verdict, 'Allowed');
    assert.equal(e.port, 8080);
    assert.equal(e.protocol, 'TCP');
    assert.equal(e.ingress.decidedBy.policy, 'NetworkPolicy app/web-from-outside');
    const inside = await weir(['explain', BASIC, '--from', '10.1.2.3', '--to', 'app/web', '--port', '8080/tcp']);
    assert.match(inside.stdout, /^verdict: DENIED$/m);
  });

  it('unknown endpoints, ports and protocols are input errors', async () => {
    const who = await weir(['explain', BASIC, '--from', 'app/nope', '--to', 'app/db', '--port', '80']);
    assert.equal(who.code, 2);
    assert.match(who.stderr, /^weir: error: no pod, workload or address matches "app\/nope"/);
    assertNoStack(who.stderr);
    const named = await weir(['explain', BASIC, '--from', 'app/web', '--to', 'app/db', '--port', 'grpc']);
    assert.equal(named.code, 2);
    assert.match(named.stderr, /^weir: error: app\/db\[Deployment\] has no container port named "grpc"/);
    const proto = await weir(['explain', BASIC, '--from', 'app/web', '--to', 'app/db', '--port', '80/ICMP']);
    assert.equal(proto.code, 2);
    assert.match(proto.stderr, /invalid protocol "ICMP"/);
    const range = await weir(['explain', BASIC, '--from', 'app/web', '--to', 'app/db', '--port', '70000']);
    assert.equal(range.code, 2);
    assert.match(range.stderr, /port must be 1-65535/);
    const missing = await weir(['explain', BASIC, '--from', 'app/web', '--to', 'app/db']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /required option '-p, --port <port>' not specified/);
  });
});

describe('weir lint', () => {
  it('a clean input: no findings, exit 0', async () => {
    const r = await weir(['lint', BASIC]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'weir: lint: 0 errors, 0 warnings, 0 notices\n');
  });

  it('every finding kind on the lint fixture; exit 1 on errors', async () => {
    const r = await weir(['lint', LINT]);
    assert.equal(r.code, 1, r.stderr);
    const codes = [...r.stdout.matchAll(/\[([a-z-]+)\]$/gm)].map((m) => m[1]);
    assert.deepEqual(codes, [
      'policy-selects-nothing',
      'peer-selects-nothing',
      'named-port-unresolved',
      'isolates-allows-nothing',
      'audit-mode',
      'rule-shadowed',
      'anp-priority-conflict',
      'peer-selects-nothing',
      'anp-duplicate-priority',
      'policy-selects-nothing',
    ]);
    assert.match(
      r.stdout,
      /^test\/fixtures\/cli\/lint\/10-networkpolicies\.yaml:10: warning: NetworkPolicy prod\/api-from-staging: spec\.ingress\[0\]\.from\[1\]: peer matches no pod/m,
    );
    assert.equal(r.stderr, 'weir: lint: 1 error, 8 warnings, 1 notice\n');
  });

  it('--format json: an array of findings', async () => {
    const r = await weir(['lint', LINT, '--format', 'json']);
    assert.equal(r.code, 1);
    const fs = JSON.parse(r.stdout) as { severity: string; code: string; message: string; object: string; field: string; file: string; line: number }[];
    assert.equal(fs.length, 10);
    const { message, ...rest } = fs[6];
    assert.deepEqual(rest, {
      severity: 'error',
      code: 'anp-priority-conflict',
      file: 'test/fixtures/cli/lint/20-admin.yaml',
      line: 36,
      object: 'AdminNetworkPolicy protect-api',
      field: 'spec.priority',
    });
    assert.match(message, /^conflicting: priority 30 is also used by AdminNetworkPolicy prod-internal/);
    assert.equal(r.stderr, '');
  });

  it('loader errors are findings too, and make the exit status 2', async () => {
    const r = await weir(['lint', BAD_CIDR, '-f', 'json']);
    assert.equal(r.code, 2);
    const fs = JSON.parse(r.stdout) as { code: string }[];
    assert.deepEqual(fs.map((f) => f.code), ['implicit-namespace', 'invalid-cidr', 'except-outside-cidr']);
  });
});

describe('weir itself', () => {
  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { version: string };
    const r = await weir(['--version']);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, `${pkg.version}\n`);
  });

  it('--help lists the commands with examples', async () => {
    const r = await weir(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['analyze', 'explain', 'lint']) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
    assert.match(r.stdout, /Examples:/);
    const sub = await weir(['analyze', '--help']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--focus-workload <workload>/);
    assert.match(sub.stdout, /\$ weir analyze examples\/demo/);
  });

  it('no arguments: help on stdout, exit 2', async () => {
    const r = await weir([]);
    assert.equal(r.code, 2);
    assert.match(r.stdout, /Usage: weir/);
  });
});

describe('top-level error handler', () => {
  const capture = (e: unknown, env: NodeJS.ProcessEnv = {}): { code: number; text: string } => {
    let text = '';
    const code = reportError(e, (t) => (text += t), env);
    return { code, text };
  };

  it('an unexpected exception is one line and exit 3; WEIR_DEBUG=1 adds the stack', () => {
    const boom = new TypeError('cannot read properties of undefined');
    const plain = capture(boom);
    assert.equal(plain.code, 3);
    assert.equal(plain.text, 'weir: error: internal error: cannot read properties of undefined (set WEIR_DEBUG=1 for the stack trace)\n');
    const debug = capture(boom, { WEIR_DEBUG: '1' });
    assert.equal(debug.code, 3);
    assert.match(debug.text, /^TypeError: cannot read properties of undefined\n\s+at /);
  });

  it('expected errors keep their code; validation errors print their diagnostics', () => {
    assert.deepEqual(capture(new CliError('nope', 1)), { code: 1, text: 'weir: error: nope\n' });
    const v = capture(new ValidationError([{ severity: 'error', code: 'invalid-cidr', message: 'invalid CIDR "x"', file: 'a.yaml', line: 3, object: 'NetworkPolicy a/b', field: 'spec.ingress[0].from[0].ipBlock.cidr' }]));
    assert.deepEqual(v, { code: 2, text: 'a.yaml:3: error: NetworkPolicy a/b: spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR "x" [invalid-cidr]\n' });
    assert.deepEqual(capture(new CommanderError(0, 'commander.version', '0.1.0')), { code: 0, text: '' });
    assert.deepEqual(capture(new CommanderError(1, 'commander.unknownOption', 'x')), { code: 2, text: '' });
  });
});
