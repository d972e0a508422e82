// suite: integration (no root; real processes: `npm run test:integration`)
// The Helm chart (deploy/helm/weir), rendered by Helm's own template engine — Go's text/template,
// sprig and sigs.k8s.io/yaml wired as Helm wires them (test/helm-render/main.go, built here from
// Debian's Go packages) — since the helm binary cannot be installed where weir is developed.
// Every rendered object is checked against the Kubernetes types as test/install.test.ts checks
// the kustomize manifests, and compared with deploy/overlays/default (and, with
// services.enabled, deploy/overlays/kube-proxy-replacement): the chart cannot drift from
// deploy/base unnoticed. Not tested: the helm binary itself, and any real cluster.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse, parseAllDocuments } from 'yaml';
import { containersOf, deployDir, renderInstall, validateManifest, type Manifest } from '../src/install/index.js';
import { execResult } from './helpers/cli.js';
import { byId, clusterRoleBindings, danglingReferences, grantedPermissions, manifestId, sourcePermissions } from './helpers/manifests.js';

const run = promisify(execFile);
const CHART = join(deployDir(), 'helm', 'weir');
const RENDERER = join(import.meta.dirname, 'helm-render');
/** Debian's Go sources: sprig and its dependencies, sigs.k8s.io/yaml, gojsonschema. */
const GOCODE = '/usr/share/gocode/src';
const NEEDED = {
  'golang-go': '/usr/bin/go',
  'golang-github-masterminds-sprig-dev': `${GOCODE}/github.com/Masterminds/sprig/functions.go`,
  'golang-k8s-sigs-yaml-dev': `${GOCODE}/sigs.k8s.io/yaml/yaml.go`,
  'golang-github-xeipuuv-gojsonschema-dev': `${GOCODE}/github.com/xeipuuv/gojsonschema/validation.go`,
};

interface Rendered {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Each document with the template it came from (`# Source:`), parsed. */
  readonly docs: { readonly source: string; readonly object: Manifest }[];
  readonly objects: Manifest[];
}

interface RenderOptions {
  readonly name?: string;
  readonly namespace?: string;
  readonly set?: readonly string[];
  /** Written to a file and passed with -f (as JSON, which YAML reads). */
  readonly values?: Record<string, unknown>;
  readonly flags?: readonly string[];
  readonly chart?: string;
}

/** `helm template` output: documents led by `---` and `# Source: <chart>/templates/<file>`. */
function parseTemplateOutput(out: string): { source: string; object: Manifest }[] {
  const parts = out.split(/^---\n# Source: (.+)\n/m);
  assert.equal(parts[0], '', 'the output starts with a document');
  const docs: { source: string; object: Manifest }[] = [];
  for (let i = 1; i < parts.length; i += 2) {
    const parsed = parseAllDocuments(parts[i + 1]);
    assert.equal(parsed.length, 1, `${parts[i]}: one document per ---`);
    assert.deepEqual(parsed[0].errors, [], `${parts[i]}: valid YAML`);
    const object = parsed[0].toJS() as Manifest;
    assert.ok(object && typeof object === 'object' && object.apiVersion && object.kind && object.metadata?.name, `${parts[i]}: an object with apiVersion, kind and name`);
    docs.push({ source: parts[i], object });
  }
  return docs;
}

describe('Helm chart (rendered with Helm\'s template engine libraries)', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'weir-helm-'));
  const bin = join(tmp, 'helm-render');
  let valuesFiles = 0;
  after(() => rmSync(tmp, { recursive: true, force: true }));

  before(async () => {
    const missing = Object.entries(NEEDED).filter(([, path]) => !existsSync(path)).map(([pkg]) => pkg);
    if (missing.length > 0) {
      throw new Error(`test/helm.test.ts renders the chart with Go and Helm's template libraries from Debian packages; missing: ${missing.join(' ')} (apt-get install -y ${Object.keys(NEEDED).join(' ')}; .ci/run installs them)`);
    }
    // GOPATH mode over Debian's sources, nothing downloaded; the renderer must lie under a GOPATH
    // with its go.mod for Go to resolve sprig's /v3 import path (see main.go).
    const src = join(tmp, 'gopath', 'src', 'helm-render');
    mkdirSync(src, { recursive: true });
    for (const f of ['main.go', 'go.mod']) copyFileSync(join(RENDERER, f), join(src, f));
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? tmp,
      GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'weir-helm-render-gocache'),
      GO111MODULE: 'off',
      GOPATH: `${join(tmp, 'gopath')}:/usr/share/gocode`,
      GOFLAGS: '',
      GOPROXY: 'off',
      CGO_ENABLED: '0',
    };
    await run('/usr/bin/go', ['build', '-o', bin, '.'], { cwd: src, env, timeout: 300_000 });
  });

  async function helm(o: RenderOptions = {}): Promise<Rendered> {
    const args = ['--namespace', o.namespace ?? 'weir'];
    for (const s of o.set ?? ['image.repository=weir']) args.push('--set', s);
    if (o.values) {
      const file = join(tmp, `values-${valuesFiles++}.yaml`);
      writeFileSync(file, JSON.stringify(o.values));
      args.push('-f', file);
    }
    args.push(...(o.flags ?? []), o.name ?? 'weir', o.chart ?? CHART);
    const r = await execResult(bin, args, 60_000);
    const docs = r.code === 0 && !(o.flags ?? []).includes('--notes') ? parseTemplateOutput(r.stdout) : [];
    return { ...r, docs, objects: docs.map((d) => d.object) };
  }

  async function helmOk(o: RenderOptions = {}): Promise<Rendered> {
    const r = await helm(o);
    assert.equal(r.code, 0, r.stderr);
    return r;
  }

  /**
   * What may differ between the chart's objects and the kustomize base's, taken out: labels and
   * annotations (Helm's app.kubernetes.io set and the config checksum), the pod selectors made of
   * them (checked on their own), imagePullPolicy (the chart's IfNotPresent is what the API server
   * defaults a tagged image to), and the ConfigMaps' text (compared as the YAML it holds:
   * kustomize's carries comments).
   */
  function comparable(o: Manifest): Manifest {
    const c = structuredClone(o);
    delete c.metadata.labels;
    delete c.metadata.annotations;
    const spec = c.spec as { selector?: unknown; template?: { metadata?: unknown; spec: { containers: { imagePullPolicy?: string }[] } } } | undefined;
    if (spec?.template) {
      delete spec.template.metadata;
      delete spec.selector;
      for (const ct of spec.template.spec.containers) {
        assert.ok(ct.imagePullPolicy === undefined || ct.imagePullPolicy === 'IfNotPresent', `${manifestId(o)}: imagePullPolicy ${ct.imagePullPolicy}`);
        delete ct.imagePullPolicy;
      }
    }
    if (c.kind === 'Service') delete (c.spec as { selector?: unknown }).selector;
    if (c.kind === 'ConfigMap') c.data = Object.fromEntries(Object.entries(c.data as Record<string, string>).map(([k, v]) => [k, parse(v) as unknown]));
    return c;
  }

  function assertSameObjects(chart: readonly Manifest[], kustomized: readonly Manifest[]): void {
    const ours = byId(chart);
    // The Helm way: the release's namespace exists before the release (--create-namespace), so the chart has no Namespace.
    const theirs = byId(kustomized.filter((o) => o.kind !== 'Namespace'));
    assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
    for (const [k, v] of theirs) assert.deepEqual(comparable(ours.get(k) as Manifest), comparable(v), k);
  }

  /** Every workload's selector picks its own pods; the Service picks the server's pods and no agent. */
  function assertSelectors(objects: readonly Manifest[]): void {
    const podLabels = new Map<string, Record<string, string>>();
    for (const w of objects.filter((o) => containersOf(o).length > 0)) {
      const spec = w.spec as { selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> } } };
      const labels = spec.template.metadata.labels;
      for (const [k, v] of Object.entries(spec.selector.matchLabels)) assert.equal(labels[k], v, `${manifestId(w)}: selector ${k}`);
      podLabels.set(w.kind, labels);
    }
    const svc = objects.find((o) => o.kind === 'Service');
    assert.ok(svc);
    const picks = (labels: Record<string, string> | undefined) => Object.entries((svc.spec as { selector: Record<string, string> }).selector).every(([k, v]) => labels?.[k] === v);
    assert.ok(picks(podLabels.get('Deployment')), 'the Service selects the server pods');
    assert.ok(!picks(podLabels.get('DaemonSet')), 'and not the agents');
  }

  it('renders valid YAML whose every object passes the Kubernetes types, also with missingkey=error; its CRDs are deploy/crds', async () => {
    const r = await helmOk();
    assert.equal(r.stderr, '');
    for (const o of r.objects) assert.deepEqual(validateManifest(o), [], manifestId(o));
    assert.deepEqual([...new Set(r.docs.map((d) => d.source))].sort(), ['weir/templates/agent.yaml', 'weir/templates/config.yaml', 'weir/templates/rbac.yaml', 'weir/templates/server.yaml']);
    // As `helm lint --strict` renders: a template reading a value values.yaml lacks would fail here.
    const strict = await helmOk({ flags: ['--strict'] });
    assert.equal(strict.stdout, r.stdout);
    // crds/ is installed as it is (Helm never templates it): the same files as deploy/crds.
    const withCrds = await helmOk({ flags: ['--include-crds'] });
    const crds = withCrds.docs.filter((d) => d.object.kind === 'CustomResourceDefinition');
    assert.deepEqual(crds.map((d) => d.source), ['weir/crds/adminnetworkpolicies.yaml', 'weir/crds/baselineadminnetworkpolicies.yaml']);
    for (const d of crds) {
      const file = d.source.slice('weir/crds/'.length);
      assert.equal(readFileSync(join(CHART, 'crds', file), 'utf8'), readFileSync(join(deployDir(), 'crds', file), 'utf8'), `crds/${file} is deploy/crds/${file}`);
      assert.deepEqual(validateManifest(d.object), [], d.source);
    }
    // One version everywhere: the chart, the image it defaults to, deploy/base, package.json.
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { apiVersion: string; version: string; appVersion: string };
    const pkg = JSON.parse(readFileSync(join(deployDir(), '..', 'package.json'), 'utf8')) as { version: string };
    const base = parse(readFileSync(join(deployDir(), 'base', 'kustomization.yaml'), 'utf8')) as { images: { newTag: string }[] };
    assert.equal(chart.apiVersion, 'v2');
    assert.deepEqual([chart.version, chart.appVersion, base.images[0].newTag], [pkg.version, pkg.version, pkg.version]);
  });

  it('makes the objects of deploy/overlays/default: same kinds, names, RBAC rules, args, ports, probes, security contexts, volumes', async () => {
    const { objects } = await helmOk();
    assertSameObjects(objects, renderInstall({ overlay: 'default' }).objects);
    assertSelectors(objects);
    assert.deepEqual(danglingReferences(objects, ['weir-token']), []);
    for (const o of objects) {
      assert.equal(o.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm', manifestId(o));
      assert.equal(o.metadata.labels?.['app.kubernetes.io/instance'], 'weir', manifestId(o));
      assert.equal(o.metadata.labels?.['helm.sh/chart'], 'weir-0.1.0', manifestId(o));
    }
  });

  it('grants list/watch on exactly the kinds the Kubernetes source reads and create on Events, nothing else', async () => {
    const { objects } = await helmOk({ name: 'netpol' });
    const { granted, wildcards } = grantedPermissions(objects);
    assert.deepEqual(wildcards, []);
    assert.deepEqual(granted, sourcePermissions());
    assert.deepEqual(clusterRoleBindings(objects), ['netpol-weir-agent → netpol-weir-events', 'netpol-weir-agent → netpol-weir-read', 'netpol-weir-server → netpol-weir-read']);
  });

  it('services.enabled adds what deploy/overlays/kube-proxy-replacement adds, with the API server address from the values', async () => {
    const { objects } = await helmOk({ set: ['image.repository=weir', 'services.enabled=true', 'services.apiServer.host=10.0.0.1'] });
    for (const o of objects) assert.deepEqual(validateManifest(o), [], manifestId(o));
    const overlay = renderInstall({ overlay: 'kube-proxy-replacement' }).objects.map((o) =>
      o.kind === 'ConfigMap' && o.metadata.name === 'weir-apiserver' ? { ...o, data: { ...(o.data as object), host: '10.0.0.1' } } : o,
    );
    assertSameObjects(objects, overlay);
    assert.deepEqual(danglingReferences(objects, ['weir-token']), []);
    const agent = (objs: readonly Manifest[]) =>
      (objs.find((o) => o.kind === 'DaemonSet')?.spec as { template: { spec: { containers: { args: string[]; env: { name: string }[] }[] } } }).template.spec.containers[0];
    assert.deepEqual(agent(objects).args.slice(-1), ['--services']);
    assert.deepEqual(
      agent(objects).env.map((e) => e.name).slice(-2),
      ['KUBERNETES_SERVICE_HOST', 'KUBERNETES_SERVICE_PORT'],
    );
    // Off by default: policy only, beside kube-proxy.
    const off = await helmOk();
    assert.ok(!agent(off.objects).args.includes('--services'));
    assert.ok(!off.objects.some((o) => o.metadata.name.endsWith('-apiserver')));
  });

  it('values take effect: release name and namespace, image, resources, tolerations, node selectors, token Secret, settings, alert rules, extra args', async () => {
    const rules = [{ name: 'shop-denied-burst', kind: 'denied-rate', namespace: 'shop', threshold: 50, window: '1m' }];
    const values = {
      image: { repository: 'registry.example/weir', tag: '1.2.3', pullPolicy: 'Always' },
      imagePullSecrets: [{ name: 'regcred' }],
      token: { secretName: 'my-token', create: true, value: 'x'.repeat(32) },
      settings: { failClosedUntilSynced: false, healthPort: 9900, podCIDRs: ['10.244.0.0/16'] },
      alerts: { rules },
      agent: {
        extraArgs: ['--strict'],
        resources: { requests: { cpu: '50m', memory: '256Mi' }, limits: { cpu: null, memory: '512Mi' } },
        tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'net', effect: 'NoSchedule' }],
        nodeSelector: { 'kubernetes.io/os': 'linux' },
        nodeOptions: '--max-old-space-size=384',
      },
      server: {
        extraArgs: ['--tls-cert', '/etc/weir-tls/tls.crt', '--tls-key', '/etc/weir-tls/tls.key'],
        extraVolumes: [{ name: 'tls', secret: { secretName: 'weir-tls' } }],
        extraVolumeMounts: [{ name: 'tls', mountPath: '/etc/weir-tls', readOnly: true }],
        nodeSelector: { role: 'infra' },
        store: { existingClaim: 'weir-flows' },
        service: { type: 'NodePort' },
        nodeOptions: '--max-old-space-size=300',
        extraEnv: [{ name: 'TZ', value: 'UTC' }],
      },
    };
    const r = await helmOk({ name: 'netpol', namespace: 'netsec', set: [], values });
    for (const o of r.objects) assert.deepEqual(validateManifest(o), [], manifestId(o));
    assert.deepEqual(danglingReferences(r.objects, ['weir-tls']), [], 'the token Secret is the chart\'s now');
    assertSelectors(r.objects);
    const names = r.objects.map(manifestId).sort();
    assert.deepEqual(names, [
      'ClusterRole /netpol-weir-events',
      'ClusterRole /netpol-weir-read',
      'ClusterRoleBinding /netpol-weir-agent-events',
      'ClusterRoleBinding /netpol-weir-agent-read',
      'ClusterRoleBinding /netpol-weir-server-read',
      'ConfigMap netsec/netpol-weir-config',
      'DaemonSet netsec/netpol-weir-agent',
      'Deployment netsec/netpol-weir-server',
      'Secret netsec/my-token',
      'Service netsec/netpol-weir-server',
      'ServiceAccount netsec/netpol-weir-agent',
      'ServiceAccount netsec/netpol-weir-server',
    ]);
    for (const b of r.objects.filter((o) => o.kind === 'ClusterRoleBinding')) assert.equal((b.subjects as { namespace: string }[])[0].namespace, 'netsec');
    const secret = r.objects.find((o) => o.kind === 'Secret');
    assert.equal(Buffer.from((secret?.data as { token: string }).token, 'base64').toString(), 'x'.repeat(32));

    type Pod = {
      nodeSelector?: Record<string, string>;
      tolerations?: unknown[];
      imagePullSecrets?: unknown[];
      volumes: { name: string; secret?: { secretName: string }; persistentVolumeClaim?: { claimName: string } }[];
      containers: {
        image: string;
        imagePullPolicy: string;
        args: string[];
        env?: { name: string; value?: string }[];
        resources: unknown;
        readinessProbe?: { httpGet: { port: number } };
        volumeMounts: unknown[];
      }[];
    };
    const pod = (kind: string) => (r.objects.find((o) => o.kind === kind)?.spec as { template: { spec: Pod } }).template.spec;
    const [agent, server] = [pod('DaemonSet'), pod('Deployment')];
    for (const p of [agent, server]) {
      assert.equal(p.containers[0].image, 'registry.example/weir:1.2.3');
      assert.equal(p.containers[0].imagePullPolicy, 'Always');
      assert.deepEqual(p.imagePullSecrets, [{ name: 'regcred' }]);
      assert.equal(p.volumes.find((v) => v.name === 'token')?.secret?.secretName, 'my-token');
    }
    // Helm merges a map of the user's into the default one: the CPU limit is gone only because it is set to null.
    assert.deepEqual(agent.containers[0].resources, { requests: { cpu: '50m', memory: '256Mi' }, limits: { memory: '512Mi' } });
    assert.deepEqual(agent.tolerations, values.agent.tolerations);
    assert.deepEqual(agent.nodeSelector, values.agent.nodeSelector);
    assert.deepEqual(agent.containers[0].args.slice(-1), ['--strict']);
    assert.equal(agent.containers[0].env?.find((e) => e.name === 'NODE_OPTIONS')?.value, '--max-old-space-size=384');
    assert.deepEqual(server.containers[0].env, [{ name: 'NODE_OPTIONS', value: '--max-old-space-size=300' }, { name: 'TZ', value: 'UTC' }]);
    assert.equal(agent.containers[0].readinessProbe?.httpGet.port, 9900, 'the probes follow settings.healthPort');
    assert.deepEqual(server.nodeSelector, { role: 'infra' });
    assert.equal(server.tolerations, undefined);
    assert.deepEqual(server.containers[0].args.slice(-4), values.server.extraArgs);
    assert.deepEqual(server.volumes.at(-1), values.server.extraVolumes[0]);
    assert.deepEqual(server.containers[0].volumeMounts.at(-1), values.server.extraVolumeMounts[0]);
    assert.deepEqual(server.volumes.find((v) => v.name === 'store')?.persistentVolumeClaim, { claimName: 'weir-flows' });
    const svc = r.objects.find((o) => o.kind === 'Service');
    assert.equal((svc?.spec as { type: string }).type, 'NodePort');

    // The agents ship to this release's Service, in this namespace.
    const data = r.objects.find((o) => o.kind === 'ConfigMap')?.data as Record<string, string>;
    assert.deepEqual(parse(data['settings.yaml']), {
      server: 'http://netpol-weir-server.netsec.svc:7680',
      failClosedUntilSynced: false,
      healthPort: 9900,
      watchdogSeconds: 180,
      podCIDRs: ['10.244.0.0/16'],
    });
    assert.deepEqual(parse(data['alerts.yaml']), { rules });
    assert.doesNotMatch(r.stdout, /\bnamespace: weir\b|\.weir\.svc\b|name: weir-/);

    // A changed setting changes the pods' config checksum (the pods roll); the same values do not.
    const checksum = (x: Rendered) => (x.objects.find((o) => o.kind === 'DaemonSet')?.spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations['checksum/config'];
    const [a, b, c] = await Promise.all([helmOk(), helmOk(), helmOk({ set: ['image.repository=weir', 'settings.watchdogSeconds=60'] })]);
    assert.match(checksum(a), /^[0-9a-f]{64}$/);
    assert.equal(checksum(a), checksum(b));
    assert.notEqual(checksum(a), checksum(c));
  });

  it('refuses a missing required value and a value the schema does not allow, with Helm\'s messages', async () => {
    const fails = async (o: RenderOptions, message: RegExp) => {
      const r = await helm(o);
      assert.equal(r.code, 1, `${JSON.stringify(o)} should fail`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, message);
    };
    await fails({ set: [] }, /^Error: execution error at \(weir\/templates\/(agent|server)\.yaml:\d+:\d+\): image\.repository is required: the weir image you built and pushed/);
    await fails({ set: ['image.repository=weir', 'services.enabled=true'] }, /^Error: execution error at \(weir\/templates\/apiserver\.yaml:\d+:\d+\): services\.apiServer\.host is required with services\.enabled=true/);
    await fails({ set: ['image.repository=weir', 'token.create=true'] }, /^Error: execution error at \(weir\/templates\/token-secret\.yaml:\d+:\d+\): token\.value is required with token\.create=true/);
    // A misspelt key is refused, not ignored (values.schema.json).
    await fails({ set: ['image.repository=weir', 'services.enable=true'] }, /^Error: values don't meet the specifications of the schema\(s\) in the following chart\(s\):\nweir:\n- services: Additional property enable is not allowed\n/);
    await fails({ set: ['image.repository=weir', 'services.apiServer.port=https'] }, /- services\.apiServer\.port: Invalid type\. Expected: integer, given: string/);
    await fails({ set: ['image.repository=weir', 'services.enabled=true', 'services.apiServer.host=https://10.0.0.1:6443'] }, /- services\.apiServer\.host: Does not match pattern/);
    await fails({ set: ['image.repository=weir', 'token.create=true', 'token.value=short'] }, /- token\.value: Does not match pattern/);
    await fails({ set: ['image.repository=weir', 'image.pullPolicy=Sometimes'] }, /- image\.pullPolicy: image\.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never"/);
  });

  it('NOTES.txt names the release\'s objects, the token Secret to create and the Pod Security label', async () => {
    const r = await helm({ name: 'netpol', namespace: 'netsec', flags: ['--notes'] });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /DaemonSet netpol-weir-agent/);
    assert.match(r.stdout, /kubectl -n netsec create secret generic netpol-weir-token --from-literal=token=/);
    assert.match(r.stdout, /kubectl label namespace netsec pod-security\.kubernetes\.io\/enforce=privileged/);
    assert.doesNotMatch(r.stdout, /Services mode/);
    const created = await helm({ set: ['image.repository=weir', 'token.create=true', `token.value=${'y'.repeat(16)}`, 'services.enabled=true', 'services.apiServer.host=10.0.0.1'], flags: ['--notes'] });
    assert.equal(created.code, 0, created.stderr);
    assert.doesNotMatch(created.stdout, /create secret/);
    assert.match(created.stdout, /Services mode: .*\bat 10\.0\.0\.1:6443\./s);
  });

  it('the renderer is Helm\'s engine: sprig, include, tpl, required, fail, lookup, toYaml/fromYaml, missing values, no env, Helm\'s errors', async () => {
    const chart = join(tmp, 'probe');
    mkdirSync(join(chart, 'templates'), { recursive: true });
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: probe\nversion: 1.0.0\nappVersion: "2.0"\n');
    writeFileSync(join(chart, 'values.yaml'), 'who: world\nnested: {a: 1, b: [x, y]}\ntext: "{{ .Values.who }} in {{ .Release.Namespace }}"\n');
    writeFileSync(join(chart, 'templates', '_helpers.tpl'), '{{- define "probe.greet" -}}hello {{ . }}{{- end }}\n');
    writeFileSync(
      join(chart, 'templates', 'cm.yaml'),
      [
        'apiVersion: v1',
        'kind: ConfigMap',
        'metadata:',
        '  name: {{ .Release.Name }}-{{ .Chart.Name }}',
        'data:',
        '  include: {{ include "probe.greet" .Values.who | upper | quote }}',
        '  tpl: {{ tpl .Values.text . | quote }}',
        '  missing: "{{ .Values.absent }}"',
        '  yaml: {{ toYaml .Values.nested | quote }}',
        '  fromYaml: {{ (fromYaml "k: [1, 2]").k | toJson | quote }}',
        '  lookup: {{ lookup "v1" "Secret" "ns" "x" | len | quote }}',
        '  template: {{ .Template.Name }} {{ .Template.BasePath }}',
        '  capabilities: {{ .Capabilities.KubeVersion.Minor | quote }}',
        '  release: {{ printf "%s %v %s" .Release.Service .Release.IsInstall .Chart.AppVersion | quote }}',
        '  sprig: {{ list 3 1 2 | sortAlpha | join "," | quote }}',
      ].join('\n'),
    );
    const r = await helm({ chart, name: 'p', namespace: 'ns1', set: ['nested.a=null', 'nested.c=007'] });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.docs.map((d) => d.source), ['probe/templates/cm.yaml']);
    assert.equal(r.objects[0].metadata.name, 'p-probe');
    assert.deepEqual(r.objects[0].data, {
      include: 'HELLO WORLD',
      tpl: 'world in ns1',
      missing: '',
      // YAML 1.1, as Helm reads values.yaml: an unquoted y is true. A null from --set deletes a
      // default; 007 stays a string, as Helm's strvals leaves it.
      yaml: 'b:\n- x\n- true\nc: "007"',
      fromYaml: '[1,2]',
      lookup: '0',
      template: 'probe/templates/cm.yaml probe/templates',
      capabilities: '32',
      release: 'Helm true 2.0',
      sprig: '1,2,3',
    });
    // Helm removes sprig's env and expandenv; required and fail are reworded as Helm rewords them.
    writeFileSync(join(chart, 'templates', 'env.yaml'), 'x: {{ env "HOME" }}\n');
    const env = await helm({ chart, set: [] });
    assert.equal(env.code, 1);
    assert.match(env.stderr, /^Error: parse error at \(probe\/templates\/env\.yaml:1\): function "env" not defined/);
    writeFileSync(join(chart, 'templates', 'env.yaml'), '{{ if .Values.who }}{{ fail "no, thanks" }}{{ end }}\n');
    const fail = await helm({ chart, set: [] });
    assert.match(fail.stderr, /^Error: execution error at \(probe\/templates\/env\.yaml:1:\d+\): no, thanks\n/);
    writeFileSync(join(chart, 'templates', 'env.yaml'), 'a: {{ .Values.who }}\n  b: c\n');
    const bad = await helm({ chart, set: [] });
    assert.match(bad.stderr, /^Error: YAML parse error on probe\/templates\/env\.yaml: error converting YAML to JSON/);
    writeFileSync(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: probe\nversion: one\n');
    const version = await helm({ chart, set: [] });
    assert.match(version.stderr, /^Error: validation: chart\.metadata\.version "one" is invalid/);
  });
});
