package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// This file is a small kustomize: enough of it to resolve the overlays in
// deploy/k8s (resources, components, patches with and without targets,
// $patch: delete, strategic merge on the built-in kinds, secret and config
// map generators, images) so that the tests can check what a cluster would
// receive. It refuses whatever it does not understand, so a kustomization
// that grows a feature fails here loudly instead of being checked wrongly.
// `kubectl kustomize deploy/k8s/overlays/NAME` is the full implementation.

// object is one Kubernetes object as decoded YAML.
type object map[string]any

func (o object) kind() string       { s, _ := o["kind"].(string); return s }
func (o object) apiVersion() string { s, _ := o["apiVersion"].(string); return s }
func (o object) name() string       { s, _ := get(o, "metadata", "name").(string); return s }
func (o object) String() string     { return o.kind() + "/" + o.name() }

// get walks nested maps; nil when a step is missing.
func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			if o, isObj := v.(object); isObj {
				m = o
			} else {
				return nil
			}
		}
		v = m[p]
	}
	return v
}

func getMap(v any, path ...string) map[string]any {
	m, _ := get(v, path...).(map[string]any)
	return m
}

func getList(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func getString(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// readDocs decodes every YAML document of a file; comment-only documents are dropped.
func readDocs(path string) ([]object, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeDocs(path, raw)
}

func decodeDocs(name string, raw []byte) ([]object, error) {
	var out []object
	for i, doc := range docSeparator.Split(string(raw), -1) {
		if len(bytes.TrimSpace(stripComments([]byte(doc)))) == 0 {
			continue
		}
		var o object
		if err := yaml.UnmarshalStrict([]byte(doc), &o); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i+1, err)
		}
		out = append(out, o)
	}
	return out, nil
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, line := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && t[0] != '#' {
			out = append(out, line...)
			out = append(out, '\n')
		}
	}
	return out
}

// kustomization is the subset of kustomization.yaml that deploy/k8s uses.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
		IncludeTemplates bool              `json:"includeTemplates"`
	} `json:"labels"`
	Resources       []string    `json:"resources"`
	Components      []string    `json:"components"`
	Patches         []patchRef  `json:"patches"`
	SecretGenerator []generator `json:"secretGenerator"`
	Images          []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
		Digest  string `json:"digest"`
	} `json:"images"`
}

type patchRef struct {
	Path   string `json:"path"`
	Patch  string `json:"patch"`
	Target *struct {
		Group   string `json:"group"`
		Version string `json:"version"`
		Kind    string `json:"kind"`
		Name    string `json:"name"`
	} `json:"target"`
}

type generator struct {
	Name     string   `json:"name"`
	Literals []string `json:"literals"`
	Options  struct {
		DisableNameSuffixHash bool `json:"disableNameSuffixHash"`
	} `json:"options"`
}

func readKustomization(dir string) (kustomization, error) {
	var k kustomization
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return k, err
	}
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		return k, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	return k, nil
}

// build resolves the kustomization in dir into the objects it produces.
// images reports every image rewrite, keyed by the name it replaces.
func build(dir string) (objs []object, images map[string]string, err error) {
	images = map[string]string{}
	objs, err = buildInto(dir, nil, images, "Kustomization")
	return objs, images, err
}

func buildInto(dir string, acc []object, images map[string]string, wantKind string) ([]object, error) {
	k, err := readKustomization(dir)
	if err != nil {
		return nil, err
	}
	if k.Kind != wantKind {
		return nil, fmt.Errorf("%s: kind %q, want %s", dir, k.Kind, wantKind)
	}
	wantAPI := map[string]string{"Kustomization": "kustomize.config.k8s.io/v1beta1", "Component": "kustomize.config.k8s.io/v1alpha1"}[wantKind]
	if k.APIVersion != wantAPI {
		return nil, fmt.Errorf("%s: apiVersion %q, want %s", dir, k.APIVersion, wantAPI)
	}
	var own []object
	for _, r := range k.Resources {
		if strings.Contains(r, "://") || strings.HasPrefix(r, "github.com/") {
			return nil, fmt.Errorf("%s: remote resource %s: deploy/k8s must build offline", dir, r)
		}
		p := filepath.Join(dir, r)
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("%s: resource %s: %w", dir, r, err)
		}
		if st.IsDir() {
			sub, err := buildInto(p, nil, images, "Kustomization")
			if err != nil {
				return nil, err
			}
			own = append(own, sub...)
			continue
		}
		docs, err := readDocs(p)
		if err != nil {
			return nil, err
		}
		own = append(own, docs...)
	}
	for _, g := range k.SecretGenerator {
		if !g.Options.DisableNameSuffixHash {
			return nil, fmt.Errorf("%s: secretGenerator %s: set disableNameSuffixHash (this resolver does not rename references)", dir, g.Name)
		}
		data := map[string]any{}
		for _, l := range g.Literals {
			key, val, ok := strings.Cut(l, "=")
			if !ok {
				return nil, fmt.Errorf("%s: secretGenerator %s: literal %q is not key=value", dir, g.Name, l)
			}
			data[key] = val
		}
		own = append(own, object{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": g.Name}, "stringData": data})
	}
	acc = append(acc, own...)
	for _, c := range k.Components {
		if acc, err = buildInto(filepath.Join(dir, c), acc, images, "Component"); err != nil {
			return nil, err
		}
	}
	for _, p := range k.Patches {
		if acc, err = applyPatch(dir, p, acc); err != nil {
			return nil, err
		}
	}
	if k.Namespace != "" {
		for _, o := range acc {
			if !clusterScoped[o.kind()] {
				getMap(o, "metadata")["namespace"] = k.Namespace
			}
		}
	}
	for _, l := range k.Labels {
		if l.IncludeSelectors {
			return nil, fmt.Errorf("%s: labels with includeSelectors would change immutable Deployment selectors", dir)
		}
		for _, o := range acc {
			md := getMap(o, "metadata")
			labels, _ := md["labels"].(map[string]any)
			if labels == nil {
				labels = map[string]any{}
				md["labels"] = labels
			}
			for key, v := range l.Pairs {
				labels[key] = v
			}
		}
	}
	for _, im := range k.Images {
		if im.NewName == "" && im.NewTag == "" && im.Digest == "" {
			return nil, fmt.Errorf("%s: image %s: nothing to set", dir, im.Name)
		}
		ref := im.NewName
		if ref == "" {
			ref = im.Name
		}
		if im.NewTag != "" {
			ref += ":" + im.NewTag
		}
		if im.Digest != "" {
			ref += "@" + im.Digest
		}
		used := false
		for _, o := range acc {
			for _, c := range podContainers(o) {
				if c["image"] == im.Name {
					c["image"] = ref
					used = true
				}
			}
		}
		if !used && images[im.Name] == "" {
			return nil, fmt.Errorf("%s: images entry %s matches no container", dir, im.Name)
		}
		images[im.Name] = ref
	}
	return acc, nil
}

// clusterScoped are the kinds kustomize's namespace field leaves alone.
var clusterScoped = map[string]bool{"Namespace": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"CustomResourceDefinition": true, "PersistentVolume": true, "StorageClass": true, "PriorityClass": true,
	"ClusterTriggerAuthentication": true}

// podContainers returns the containers and init containers of a workload.
func podContainers(o object) []map[string]any {
	var spec map[string]any
	switch o.kind() {
	case "Deployment", "StatefulSet", "DaemonSet", "Job":
		spec = getMap(o, "spec", "template", "spec")
	case "CronJob":
		spec = getMap(o, "spec", "jobTemplate", "spec", "template", "spec")
	}
	var out []map[string]any
	for _, key := range []string{"initContainers", "containers"} {
		for _, c := range getList(spec, key) {
			if m, ok := c.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

func applyPatch(dir string, p patchRef, objs []object) ([]object, error) {
	var docs []object
	var err error
	switch {
	case p.Path != "" && p.Patch == "":
		docs, err = readDocs(filepath.Join(dir, p.Path))
	case p.Patch != "" && p.Path == "":
		docs, err = decodeDocs(dir+" inline patch", []byte(p.Patch))
	default:
		return nil, fmt.Errorf("%s: a patch needs exactly one of path and patch", dir)
	}
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(strings.TrimSpace(p.Patch), "-") {
		return nil, fmt.Errorf("%s: JSON 6902 patches are not supported here", dir)
	}
	for _, d := range docs {
		matched := 0
		var out []object
		for _, o := range objs {
			var hit bool
			if p.Target != nil {
				t := p.Target
				hit = (t.Kind == "" || t.Kind == o.kind()) &&
					(t.Name == "" || t.Name == o.name()) &&
					(t.Group == "" || strings.HasPrefix(o.apiVersion(), t.Group+"/"))
			} else {
				hit = o.kind() == d.kind() && o.name() == d.name()
			}
			if !hit {
				out = append(out, o)
				continue
			}
			matched++
			if d["$patch"] == "delete" {
				continue
			}
			merge(o, d, builtinKind(o.apiVersion()))
			out = append(out, o)
		}
		if matched == 0 {
			return nil, fmt.Errorf("%s: patch %s%s matches no resource", dir, d, p.Path)
		}
		objs = out
	}
	return objs, nil
}

// builtinKind says whether kustomize knows the kind's schema (and so its
// merge keys); custom resources get lists replaced, not merged.
func builtinKind(apiVersion string) bool {
	group, _, found := strings.Cut(apiVersion, "/")
	return !found || !strings.Contains(group, ".") || strings.HasSuffix(group, ".k8s.io")
}

// mergeKeys are the strategic-merge keys of the lists deploy/k8s patches.
var mergeKeys = map[string]string{
	"containers":     "name",
	"initContainers": "name",
	"env":            "name",
	"volumes":        "name",
	"volumeMounts":   "mountPath",
	"ports":          "containerPort",
}

// merge applies a strategic merge patch: maps merge, null deletes, lists
// with a merge key merge by it (on built-in kinds), other lists are replaced.
func merge(dst, src map[string]any, builtin bool) {
	for k, sv := range src {
		if k == "$patch" {
			continue
		}
		if sv == nil {
			delete(dst, k)
			continue
		}
		switch s := sv.(type) {
		case map[string]any:
			if d, ok := dst[k].(map[string]any); ok {
				merge(d, s, builtin)
				continue
			}
		case []any:
			if key, ok := mergeKeys[k]; ok && builtin {
				if d, ok := dst[k].([]any); ok {
					dst[k] = mergeList(d, s, key, builtin)
					continue
				}
			}
		}
		dst[k] = sv
	}
}

func mergeList(dst, src []any, key string, builtin bool) []any {
	out := slices.Clone(dst)
	for _, sv := range src {
		s, ok := sv.(map[string]any)
		if !ok {
			out = append(out, sv)
			continue
		}
		i := slices.IndexFunc(out, func(dv any) bool {
			d, ok := dv.(map[string]any)
			return ok && fmt.Sprint(d[key]) == fmt.Sprint(s[key])
		})
		switch {
		case i < 0:
			out = append(out, s)
		case s["$patch"] == "delete":
			out = slices.Delete(out, i, i+1)
		default:
			merge(out[i].(map[string]any), s, builtin)
		}
	}
	return out
}
