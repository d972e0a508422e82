// helm-render: `helm template` for weir's chart (deploy/helm/weir) where the helm binary cannot
// be installed, made of the libraries Helm's own engine is made of — Go's text/template, sprig v3
// (sprig.TxtFuncMap, less env and expandenv as Helm removes them), sigs.k8s.io/yaml for the
// values and toYaml/fromYaml, gojsonschema for values.schema.json (Helm 3 up to 3.17) — wired the
// way Helm 3 wires them. Each step below names the Helm code it follows:
//
//   - loading (pkg/chart/loader): Chart.yaml into chart.Metadata and its Validate (apiVersion,
//     name, SemVer version, type), values.yaml, values.schema.json, templates/ and crds/;
//   - values (pkg/cli/values, pkg/strvals, pkg/chartutil): -f files merged in order, then --set
//     and --set-string typed as strvals types them, then coalesced with the chart's defaults
//     (a user's null deletes a default), then validated against values.schema.json;
//   - rendering (pkg/engine): one template set named "<chart>/templates/<file>", parsed in Helm's
//     order; missingkey=zero (=error with --strict, as `helm lint --strict`); Helm's include
//     (with its nesting limit), tpl, required, fail, toYaml, mustToYaml, fromYaml, fromYamlArray,
//     toJson, mustToJson, fromJson, fromJsonArray, and lookup returning an empty map as it does
//     without a cluster; .Values .Release .Chart .Capabilities .Template; "<no value>" removed;
//     files whose name starts with "_" are not rendered; errors reworded as Helm rewords them
//     ("execution error at (file:line:col): message");
//   - output (pkg/releaseutil, pkg/action): NOTES.txt set apart, every other file split into its
//     YAML documents, empty ones dropped, each parsed (a YAML error names the file), sorted in
//     Helm's install order, printed as `helm template` prints them; crds/ unrendered first
//     with --include-crds.
//
// Not implemented, and refused or absent rather than imitated: subcharts and dependencies, hooks,
// library charts, .Files, toToml/fromToml/toYamlPretty, --set list indexes (a[0]=x), .helmignore,
// the kubeVersion constraint, a real cluster behind lookup.
//
// Build in GOPATH mode over Debian's packaged sources (golang-go,
// golang-github-masterminds-sprig-dev, golang-k8s-sigs-yaml-dev,
// golang-github-xeipuuv-gojsonschema-dev), nothing downloaded. Go resolves sprig's ".../v3"
// import paths in GOPATH mode only for code that lies under a GOPATH with a go.mod ("minimal
// module compatibility"), so this folder is copied to $TMP/src/helm-render first
// (test/helm.test.ts does exactly that):
//
//	GO111MODULE=off GOPATH=$TMP:/usr/share/gocode go build -o helm-render .
//
// Usage, as `helm template` (flags before the two arguments):
//
//	helm-render [--namespace NS] [-f values.yaml]... [--set k=v]... [--set-string k=v]...
//	            [--include-crds] [--strict] [--notes] [--kube-version v1.32.0] NAME CHART
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/semver/v3"
	"github.com/Masterminds/sprig/v3"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

// ---- the chart (pkg/chart) ----

// Maintainer and Metadata are chart.Maintainer and chart.Metadata: templates read .Chart.Name,
// .Chart.Version, .Chart.AppVersion... as fields of this struct, as in Helm.
type Maintainer struct {
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

type Metadata struct {
	Name         string            `json:"name,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Version      string            `json:"version,omitempty"`
	Description  string            `json:"description,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Maintainers  []*Maintainer     `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	APIVersion   string            `json:"apiVersion,omitempty"`
	Condition    string            `json:"condition,omitempty"`
	Tags         string            `json:"tags,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
	Type         string            `json:"type,omitempty"`
}

// validate is chart.Metadata.Validate, with its messages.
func (md *Metadata) validate() error {
	switch {
	case md.APIVersion == "":
		return errors.New("validation: chart.metadata.apiVersion is required")
	case md.Name == "":
		return errors.New("validation: chart.metadata.name is required")
	case md.Name != filepath.Base(md.Name):
		return fmt.Errorf("validation: chart.metadata.name %q is invalid", md.Name)
	case md.Version == "":
		return errors.New("validation: chart.metadata.version is required")
	}
	if _, err := semver.NewVersion(md.Version); err != nil {
		return fmt.Errorf("validation: chart.metadata.version %q is invalid", md.Version)
	}
	if md.Type != "" && md.Type != "application" && md.Type != "library" {
		return errors.New("validation: chart.metadata.type must be application or library")
	}
	return nil
}

type file struct {
	name string // relative to the chart: templates/agent.yaml
	data []byte
}

type chart struct {
	md        *Metadata
	values    map[string]interface{}
	schema    []byte
	templates []file
	crds      []file
}

func loadChart(dir string) (*chart, error) {
	c := &chart{values: map[string]interface{}{}}
	raw, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errors.New("Chart.yaml file is missing")
	} else if err != nil {
		return nil, err
	}
	c.md = &Metadata{}
	if err := yaml.Unmarshal(raw, c.md); err != nil {
		return nil, fmt.Errorf("cannot load Chart.yaml: %w", err)
	}
	if err := c.md.validate(); err != nil {
		return nil, err
	}
	if len(c.md.Dependencies) > 0 {
		return nil, errors.New("helm-render: chart dependencies are not implemented")
	}
	if c.md.Type == "library" {
		return nil, errors.New("library charts are not installable")
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "values.yaml")); err == nil {
		if err := yaml.Unmarshal(raw, &c.values); err != nil {
			return nil, fmt.Errorf("cannot load values.yaml: %w", err)
		}
		if c.values == nil {
			c.values = map[string]interface{}{}
		}
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "values.schema.json")); err == nil {
		c.schema = raw
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.templates = append(c.templates, file{rel, data})
		case strings.HasPrefix(rel, "crds/") && (strings.HasSuffix(rel, ".yaml") || strings.HasSuffix(rel, ".yml") || strings.HasSuffix(rel, ".json")):
			c.crds = append(c.crds, file{rel, data})
		case strings.HasPrefix(rel, "charts/"):
			return errors.New("helm-render: subcharts are not implemented")
		}
		return nil
	})
	return c, err
}

// ---- values (pkg/cli/values, pkg/strvals, pkg/chartutil) ----

// mergeMaps is values.mergeMaps: b over a, maps merged key by key.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if v, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k]; ok {
				if bv, ok := bv.(map[string]interface{}); ok {
					out[k] = mergeMaps(bv, v)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// typedVal is strvals.typedVal: what `--set` makes of a value (`--set-string` keeps the string).
func typedVal(val string, asString bool) interface{} {
	if asString {
		return val
	}
	if strings.EqualFold(val, "true") {
		return true
	}
	if strings.EqualFold(val, "false") {
		return false
	}
	if strings.EqualFold(val, "null") {
		return nil
	}
	if strings.EqualFold(val, "0") {
		return int64(0)
	}
	// As Helm: a value starting with 0 stays a string (a zip code, an octal mode).
	if len(val) != 0 && val[0] != '0' {
		if iv, err := strconv.ParseInt(val, 10, 64); err == nil {
			return iv
		}
	}
	return val
}

// splitUnescaped splits at sep outside `{...}`, keeping backslash escapes for unescape.
func splitUnescaped(s string, sep rune) []string {
	var parts []string
	var cur strings.Builder
	depth, escaped := 0, false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune('\\')
			cur.WriteRune(r)
			escaped = false
			continue
		case r == '\\':
			escaped = true
			continue
		case r == '{':
			depth++
		case r == '}' && depth > 0:
			depth--
		case r == sep && depth == 0:
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteRune(r)
	}
	if escaped {
		cur.WriteRune('\\')
	}
	return append(parts, cur.String())
}

func unescape(s string) string {
	var b strings.Builder
	escaped := false
	for _, r := range s {
		if !escaped && r == '\\' {
			escaped = true
			continue
		}
		escaped = false
		b.WriteRune(r)
	}
	return b.String()
}

// parseSet is strvals.ParseInto (ParseIntoString with asString) for `a.b=v`, `a=v,b=w` and
// `a={x,y}`, `\` escaping the next character. List indexes are refused, not misread.
func parseSet(s string, dest map[string]interface{}, asString bool) error {
	for _, pair := range splitUnescaped(s, ',') {
		eq := -1
		for i, escaped := 0, false; i < len(pair); i++ {
			if escaped {
				escaped = false
			} else if pair[i] == '\\' {
				escaped = true
			} else if pair[i] == '=' {
				eq = i
				break
			}
		}
		if eq < 0 {
			return fmt.Errorf("key %q has no value", unescape(pair))
		}
		key, raw := pair[:eq], pair[eq+1:]
		if strings.ContainsAny(key, "[]") {
			return fmt.Errorf("helm-render: list indexes in --set (%s) are not implemented: use -f", key)
		}
		var val interface{}
		if strings.HasPrefix(raw, "{") && strings.HasSuffix(raw, "}") {
			list := []interface{}{}
			if inner := raw[1 : len(raw)-1]; inner != "" {
				for _, item := range splitUnescaped(inner, ',') {
					list = append(list, typedVal(unescape(item), asString))
				}
			}
			val = list
		} else {
			val = typedVal(unescape(raw), asString)
		}
		parts := splitUnescaped(key, '.')
		m := dest
		for i, p := range parts {
			p = unescape(p)
			if i == len(parts)-1 {
				m[p] = val
				break
			}
			next, ok := m[p].(map[string]interface{})
			if !ok {
				next = map[string]interface{}{}
				m[p] = next
			}
			m = next
		}
	}
	return nil
}

func deepCopy(v interface{}) interface{} {
	switch t := v.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(t))
		for k, x := range t {
			out[k] = deepCopy(x)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(t))
		for i, x := range t {
			out[i] = deepCopy(x)
		}
		return out
	}
	return v
}

func istable(v interface{}) bool {
	_, ok := v.(map[string]interface{})
	return ok
}

// coalesceValues is chartutil.coalesceValues: the chart's defaults under the user's values; a
// user's null deletes the key.
func coalesceValues(v, defaults map[string]interface{}, prefix string) {
	for key, val := range deepCopy(defaults).(map[string]interface{}) {
		if value, ok := v[key]; ok {
			if value == nil {
				delete(v, key)
			} else if dest, ok := value.(map[string]interface{}); ok {
				if src, ok := val.(map[string]interface{}); ok {
					coalesceTables(dest, src, prefix+key)
				} else if val != nil {
					fmt.Fprintf(os.Stderr, "warning: skipped value for %s%s: Not a table.\n", prefix, key)
				}
			}
		} else {
			v[key] = val
		}
	}
}

// coalesceTables is chartutil.coalesceTablesFullKey: src (defaults) into dst (the user's).
func coalesceTables(dst, src map[string]interface{}, prefix string) {
	for key, val := range src {
		fullkey := prefix + "." + key
		if dv, ok := dst[key]; ok && dv == nil {
			delete(dst, key)
		} else if !ok {
			dst[key] = val
		} else if istable(val) {
			if istable(dv) {
				coalesceTables(dv.(map[string]interface{}), val.(map[string]interface{}), fullkey)
			} else {
				fmt.Fprintf(os.Stderr, "warning: cannot overwrite table with non table for %s (%v)\n", fullkey, val)
			}
		} else if istable(dv) && val != nil {
			fmt.Fprintf(os.Stderr, "warning: destination for %s is a table. Ignoring non-table value (%v)\n", fullkey, val)
		}
	}
}

// validateValues is chartutil.ValidateAgainstSchema for a chart without subcharts.
func validateValues(c *chart, values map[string]interface{}) error {
	if c.schema == nil {
		return nil
	}
	data, err := yaml.Marshal(values)
	if err != nil {
		return err
	}
	valuesJSON, err := yaml.YAMLToJSON(data)
	if err != nil {
		return err
	}
	if string(valuesJSON) == "null" {
		valuesJSON = []byte("{}")
	}
	result, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(c.schema), gojsonschema.NewBytesLoader(valuesJSON))
	if err != nil {
		return err
	}
	if result.Valid() {
		return nil
	}
	var sb strings.Builder
	for _, desc := range result.Errors() {
		sb.WriteString(fmt.Sprintf("- %s\n", desc))
	}
	return fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s:\n%s", c.md.Name, sb.String())
}

// ---- .Capabilities (pkg/chartutil/capabilities.go, the part templates read) ----

type KubeVersion struct {
	Version string
	Major   string
	Minor   string
}

func (kv *KubeVersion) String() string     { return kv.Version }
func (kv *KubeVersion) GitVersion() string { return kv.Version }

type VersionSet []string

func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
}

// ---- the engine (pkg/engine) ----

const (
	warnStartDelim   = "HELM_ERR_START"
	warnEndDelim     = "HELM_ERR_END"
	recursionMaxNums = 1000
)

var warnRegex = regexp.MustCompile(warnStartDelim + `((?s).*)` + warnEndDelim)

func warnWrap(warn string) string { return warnStartDelim + warn + warnEndDelim }

func notImplemented(name string) func(...interface{}) (string, error) {
	return func(...interface{}) (string, error) {
		return "", fmt.Errorf("helm-render: %s is not implemented", name)
	}
}

// funcMap is engine.funcMap: sprig's, less env and expandenv, plus Helm's own.
func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toToml":       notImplemented("toToml"),
		"fromToml":     notImplemented("fromToml"),
		"toYamlPretty": notImplemented("toYamlPretty"),
		"toYaml": func(v interface{}) string {
			data, err := yaml.Marshal(v)
			if err != nil {
				return "" // Helm swallows errors inside a template
			}
			return strings.TrimSuffix(string(data), "\n")
		},
		"mustToYaml": func(v interface{}) (string, error) {
			data, err := yaml.Marshal(v)
			if err != nil {
				return "", err
			}
			return strings.TrimSuffix(string(data), "\n"), nil
		},
		"fromYaml": func(str string) map[string]interface{} {
			m := map[string]interface{}{}
			if err := yaml.Unmarshal([]byte(str), &m); err != nil {
				m["Error"] = err.Error()
			}
			return m
		},
		"fromYamlArray": func(str string) []interface{} {
			a := []interface{}{}
			if err := yaml.Unmarshal([]byte(str), &a); err != nil {
				a = []interface{}{err.Error()}
			}
			return a
		},
		"toJson": func(v interface{}) string {
			data, err := json.Marshal(v)
			if err != nil {
				return ""
			}
			return string(data)
		},
		"mustToJson": func(v interface{}) (string, error) {
			data, err := json.Marshal(v)
			if err != nil {
				return "", err
			}
			return string(data), nil
		},
		"fromJson": func(str string) map[string]interface{} {
			m := map[string]interface{}{}
			if err := json.Unmarshal([]byte(str), &m); err != nil {
				m["Error"] = err.Error()
			}
			return m
		},
		"fromJsonArray": func(str string) []interface{} {
			a := []interface{}{}
			if err := json.Unmarshal([]byte(str), &a); err != nil {
				a = []interface{}{err.Error()}
			}
			return a
		},
		// What `helm template` (no cluster) gets: nothing found.
		"lookup": func(string, string, string, string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		"required": func(warn string, val interface{}) (interface{}, error) {
			if val == nil {
				return val, errors.New(warnWrap(warn))
			} else if s, ok := val.(string); ok && s == "" {
				return val, errors.New(warnWrap(warn))
			}
			return val, nil
		},
		"fail": func(msg string) (string, error) {
			return "", errors.New(warnWrap(msg))
		},
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func missingKeyOption(strict bool) string {
	if strict {
		return "missingkey=error"
	}
	return "missingkey=zero"
}

// includeFun and tplFun are the engine's closures over the template set (Helm 3.13+).
func includeFun(t *template.Template, includedNames map[string]int) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		var buf strings.Builder
		if v, ok := includedNames[name]; ok {
			if v > recursionMaxNums {
				return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
			}
			includedNames[name]++
		} else {
			includedNames[name] = 1
		}
		err := t.ExecuteTemplate(&buf, name, data)
		includedNames[name]--
		return buf.String(), err
	}
}

func tplFun(parent *template.Template, includedNames map[string]int, strict bool) func(string, map[string]interface{}) (string, error) {
	return func(tpl string, vals map[string]interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %w", err)
		}
		t.Option(missingKeyOption(strict))
		t.Funcs(template.FuncMap{
			"include": includeFun(t, includedNames),
			"tpl":     tplFun(t, includedNames, strict),
		})
		t, err = t.New(parent.Name()).Parse(tpl)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", tpl, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", tpl, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

// sortTemplates is engine.sortTemplates: deeper paths first, then reverse lexical order.
func sortTemplates(names []string) []string {
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		ca, cb := strings.Count(a, "/"), strings.Count(b, "/")
		if ca == cb {
			return a > b
		}
		return ca > cb
	})
	return names
}

func cleanupParseError(filename string, err error) error {
	tokens := strings.Split(err.Error(), ": ")
	if len(tokens) == 1 {
		return fmt.Errorf("parse error in (%s): %s", filename, err)
	}
	return fmt.Errorf("parse error at (%s): %s", tokens[1], tokens[len(tokens)-1])
}

func cleanupExecError(filename string, err error) error {
	var execErr template.ExecError
	if !errors.As(err, &execErr) {
		return err
	}
	tokens := strings.SplitN(err.Error(), ": ", 3)
	if len(tokens) != 3 {
		return fmt.Errorf("execution error in (%s): %s", filename, err)
	}
	if match := warnRegex.FindStringSubmatch(tokens[2]); match != nil {
		return fmt.Errorf("execution error at (%s): %s", tokens[1], match[1])
	}
	return err
}

// render is engine.render: every template parsed into one set, every file not starting with "_"
// executed with the top-level values and its own .Template.
func render(c *chart, top map[string]interface{}, strict bool) (map[string]string, error) {
	t := template.New("gotpl")
	t.Option(missingKeyOption(strict))
	includedNames := map[string]int{}
	funcs := funcMap()
	funcs["include"] = includeFun(t, includedNames)
	funcs["tpl"] = tplFun(t, includedNames, strict)
	t.Funcs(funcs)

	sources := map[string]string{}
	var names []string
	for _, f := range c.templates {
		name := path.Join(c.md.Name, f.name)
		sources[name] = string(f.data)
		names = append(names, name)
	}
	names = sortTemplates(names)
	for _, name := range names {
		if _, err := t.New(name).Parse(sources[name]); err != nil {
			return nil, cleanupParseError(name, err)
		}
	}
	rendered := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue
		}
		top["Template"] = map[string]interface{}{"Name": name, "BasePath": path.Join(c.md.Name, "templates")}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, name, top); err != nil {
			return nil, cleanupExecError(name, err)
		}
		rendered[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return rendered, nil
}

// ---- manifests (pkg/releaseutil) ----

var sep = regexp.MustCompile("(?:^|\\s*\n)---\\s*")

// splitManifests is releaseutil.SplitManifests, in document order.
func splitManifests(bigFile string) []string {
	var docs []string
	for _, d := range sep.Split(strings.TrimSpace(bigFile), -1) {
		if d == "" {
			continue
		}
		docs = append(docs, strings.TrimSpace(d))
	}
	return docs
}

type simpleHead struct {
	Version  string `json:"apiVersion"`
	Kind     string `json:"kind,omitempty"`
	Metadata *struct {
		Name        string            `json:"name"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata,omitempty"`
}

type manifest struct {
	name    string
	content string
	kind    string
}

var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList",
	"RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
	"ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
	"IngressClass", "Ingress", "APIService", "MutatingWebhookConfiguration",
	"ValidatingWebhookConfiguration",
}

// sortManifests is releaseutil.SortManifests with InstallOrder, for charts without hooks.
func sortManifests(files map[string]string) ([]manifest, error) {
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var out []manifest
	for _, p := range paths {
		if strings.HasPrefix(path.Base(p), "_") || strings.TrimSpace(files[p]) == "" {
			continue
		}
		for _, doc := range splitManifests(files[p]) {
			var head simpleHead
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return nil, fmt.Errorf("YAML parse error on %s: %w", p, err)
			}
			if head.Metadata != nil && head.Metadata.Annotations["helm.sh/hook"] != "" {
				return nil, fmt.Errorf("helm-render: hooks are not implemented (%s)", p)
			}
			out = append(out, manifest{p, doc, head.Kind})
		}
	}
	order := map[string]int{}
	for i, k := range installOrder {
		order[k] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, aok := order[out[i].kind]
		b, bok := order[out[j].kind]
		switch {
		case !aok && !bok:
			return out[i].kind < out[j].kind
		case !aok:
			return false
		case !bok:
			return true
		}
		return a < b
	})
	return out, nil
}

// ---- the command ----

var releaseName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// renderError marks the errors `helm template` follows with its --debug hint (those raised
// once the release exists: rendering and parsing the manifests).
type renderError struct{ error }

func run(args []string) (string, error) {
	fl := flag.NewFlagSet("helm-render", flag.ContinueOnError)
	namespace := fl.String("namespace", "default", "the release's namespace")
	includeCRDs := fl.Bool("include-crds", false, "print crds/ first, unrendered")
	strict := fl.Bool("strict", false, "fail on a missing key (missingkey=error), as helm lint --strict")
	notes := fl.Bool("notes", false, "print the rendered NOTES.txt instead of the manifests")
	kubeVersion := fl.String("kube-version", "v1.32.0", "the Kubernetes version in .Capabilities")
	var valueFiles, sets, setStrings multiFlag
	fl.Var(&valueFiles, "f", "a values file (repeatable)")
	fl.Var(&valueFiles, "values", "a values file (repeatable)")
	fl.Var(&sets, "set", "key=value (repeatable)")
	fl.Var(&setStrings, "set-string", "key=value kept a string (repeatable)")
	if err := fl.Parse(args); err != nil {
		return "", err
	}
	if fl.NArg() != 2 {
		return "", errors.New("usage: helm-render [flags] NAME CHART")
	}
	name, dir := fl.Arg(0), fl.Arg(1)
	if !releaseName.MatchString(name) || len(name) > 53 {
		return "", fmt.Errorf("release name %q: invalid release name, must match regex %s and the length must not be longer than 53", name, releaseName.String())
	}

	c, err := loadChart(dir)
	if err != nil {
		return "", err
	}

	user := map[string]interface{}{}
	for _, f := range valueFiles {
		raw, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		current := map[string]interface{}{}
		if err := yaml.Unmarshal(raw, &current); err != nil {
			return "", fmt.Errorf("failed to parse %s: %w", f, err)
		}
		user = mergeMaps(user, current)
	}
	for _, s := range sets {
		if err := parseSet(s, user, false); err != nil {
			return "", fmt.Errorf("failed parsing --set data: %w", err)
		}
	}
	for _, s := range setStrings {
		if err := parseSet(s, user, true); err != nil {
			return "", fmt.Errorf("failed parsing --set-string data: %w", err)
		}
	}
	coalesceValues(user, c.values, c.md.Name+".")
	if err := validateValues(c, user); err != nil {
		return "", err
	}

	v, err := semver.NewVersion(*kubeVersion)
	if err != nil {
		return "", fmt.Errorf("invalid kube version %q: %w", *kubeVersion, err)
	}
	top := map[string]interface{}{
		"Values": user,
		"Chart":  c.md,
		"Release": map[string]interface{}{
			"Name":      name,
			"Namespace": *namespace,
			"Revision":  1,
			"Service":   "Helm",
			"IsUpgrade": false,
			"IsInstall": true,
		},
		"Capabilities": &Capabilities{
			KubeVersion: KubeVersion{Version: "v" + v.String(), Major: strconv.FormatUint(v.Major(), 10), Minor: strconv.FormatUint(v.Minor(), 10)},
			APIVersions: VersionSet{"v1", "apps/v1", "batch/v1", "policy/v1", "rbac.authorization.k8s.io/v1", "apiextensions.k8s.io/v1", "discovery.k8s.io/v1", "networking.k8s.io/v1", "events.k8s.io/v1", "autoscaling/v2", "storage.k8s.io/v1", "scheduling.k8s.io/v1", "coordination.k8s.io/v1"},
		},
		"Subcharts": map[string]interface{}{},
	}
	files, err := render(c, top, *strict)
	if err != nil {
		return "", renderError{err}
	}

	notesName := path.Join(c.md.Name, "templates", "NOTES.txt")
	notesText := files[notesName]
	for k := range files {
		if strings.HasSuffix(k, "NOTES.txt") {
			delete(files, k)
		}
	}
	manifests, err := sortManifests(files)
	if err != nil {
		return "", renderError{err}
	}
	if *notes {
		return notesText, nil
	}
	var b strings.Builder
	if *includeCRDs {
		for _, crd := range c.crds {
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", path.Join(c.md.Name, crd.name), string(crd.data))
		}
	}
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.name, m.content)
	}
	return b.String(), nil
}

func main() {
	out, err := run(os.Args[1:])
	if err != nil {
		msg := err.Error()
		var re renderError
		if errors.As(err, &re) {
			msg += "\n\nUse --debug flag to render out invalid YAML"
		}
		fmt.Fprintf(os.Stderr, "Error: %s\n", msg)
		os.Exit(1)
	}
	fmt.Print(out)
}
