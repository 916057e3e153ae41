package deploy_test

import (
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/modelpack"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

const k8sDir = "k8s"

// overlays are the deployable kustomizations; each must build and pass every check.
var overlays = []string{"cpu", "gpu", "dev"}

// externalSecrets are the Secrets the operator creates (docs/deploy.md), with
// the keys the manifests read and a stand-in value for validating settings.
var externalSecrets = map[string]map[string]string{
	"facestream-database": {"url": "postgres://facestream:password@postgres.example:5432/facestream?sslmode=verify-full"},
	"facestream-nats":     {"nats.creds": ""},
	"facestream-blob":     {"key": "k1:" + strings.Repeat("ab", 32), "previous": ""},
}

// gpuStages are the stages the gpu overlay puts on GPU nodes.
var gpuStages = []config.Binary{config.Detect, config.Embed}

// stageBinaries are the pipeline stages: each is a Deployment scaled by KEDA on its consumer.
var stageBinaries = []config.Binary{config.Ingest, config.Detect, config.Embed, config.Attrs, config.Aggregate}

func TestK8sFilesParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(k8sDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(path); ext != ".yaml" {
			t.Errorf("%s: only .yaml files belong in deploy/k8s", path)
			return nil
		}
		if d.Name() == "kustomization.yaml" {
			if _, err := readKustomization(filepath.Dir(path)); err != nil {
				t.Error(err)
			}
			return nil
		}
		docs, err := readDocs(path)
		if err != nil {
			t.Error(err)
			return nil
		}
		if len(docs) == 0 {
			t.Errorf("%s holds no object", path)
		}
		for i, o := range docs {
			n++
			if o.apiVersion() == "" || o.kind() == "" || o.name() == "" {
				t.Errorf("%s: document %d lacks apiVersion, kind or metadata.name", path, i+1)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("deploy/k8s holds only %d objects", n)
	}
}

// TestK8sEveryFileIsUsed: a manifest no kustomization names is never deployed.
func TestK8sEveryFileIsUsed(t *testing.T) {
	used := map[string]bool{}
	var visit func(dir string)
	visit = func(dir string) {
		used[filepath.Join(dir, "kustomization.yaml")] = true
		k, err := readKustomization(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range append(slices.Clone(k.Resources), k.Components...) {
			p := filepath.Join(dir, r)
			if st, err := os.Stat(p); err == nil && st.IsDir() {
				visit(p)
			} else {
				used[p] = true
			}
		}
		for _, p := range k.Patches {
			if p.Path != "" {
				used[filepath.Join(dir, p.Path)] = true
			}
		}
	}
	for _, o := range overlays {
		visit(filepath.Join(k8sDir, "overlays", o))
	}
	visit(filepath.Join(k8sDir, "components", "ingress")) // optional, for overlays of their own
	_ = filepath.WalkDir(k8sDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !used[path] {
			t.Errorf("%s is referenced by no kustomization", path)
		}
		return nil
	})
}

// cluster is one overlay's objects, indexed.
type cluster struct {
	name    string
	objs    []object
	images  map[string]string
	byKind  map[string][]object
	configs map[string]map[string]string // ConfigMaps and Secrets: name -> key -> value
}

func loadOverlay(t *testing.T, name string) cluster {
	t.Helper()
	objs, images, err := build(filepath.Join(k8sDir, "overlays", name))
	if err != nil {
		t.Fatalf("overlay %s: %v", name, err)
	}
	c := cluster{name: name, objs: objs, images: images, byKind: map[string][]object{}, configs: map[string]map[string]string{}}
	seen := map[string]bool{}
	for _, o := range objs {
		if ns := getString(o, "metadata", "namespace"); !clusterScoped[o.kind()] && ns != "facestream" {
			t.Errorf("overlay %s: %s lands in namespace %q, not facestream", name, o, ns)
		}
		if seen[o.String()] {
			t.Errorf("overlay %s: %s twice", name, o)
		}
		seen[o.String()] = true
		c.byKind[o.kind()] = append(c.byKind[o.kind()], o)
		if o.kind() == "ConfigMap" || o.kind() == "Secret" {
			data := map[string]string{}
			for _, field := range []string{"data", "stringData"} {
				for k, v := range getMap(o, field) {
					s, ok := v.(string)
					if !ok {
						t.Errorf("overlay %s: %s key %s is not a string (quote it)", name, o, k)
					}
					data[k] = s
				}
			}
			c.configs[o.kind()+"/"+o.name()] = data
		}
	}
	return c
}

func (c cluster) find(kind, name string) object {
	for _, o := range c.byKind[kind] {
		if o.name() == name {
			return o
		}
	}
	return nil
}

// workload is a facestream container with the binary it runs and its resolved environment.
type workload struct {
	obj       object
	pod       map[string]any
	container map[string]any
	binary    config.Binary
	env       map[string]string
	cfg       config.Config
}

func (w workload) String() string { return w.obj.String() }

// commandBinary says which facestream binary a command runs ("" for none).
func commandBinary(cmd []string) config.Binary {
	if len(cmd) == 0 {
		return ""
	}
	switch exe := cmd[0]; {
	case exe == "facestream" || exe == "/usr/local/bin/facestream":
		if len(cmd) > 1 {
			return config.Binary(cmd[1])
		}
	case strings.HasPrefix(exe, "/usr/local/bin/"):
		return config.Binary(strings.TrimPrefix(exe, "/usr/local/bin/"))
	}
	return ""
}

func stringList(v any) []string {
	var out []string
	for _, s := range v.([]any) {
		out = append(out, fmt.Sprint(s))
	}
	return out
}

// workloads resolves every facestream container of the overlay and checks
// its environment and flags against internal/config.
func (c cluster) workloads(t *testing.T) []workload {
	t.Helper()
	var out []workload
	for _, o := range c.objs {
		for _, ct := range podContainers(o) {
			cmd, _ := ct["command"].([]any)
			if cmd == nil {
				continue // not ours (dev's nats and postgres use their images' entrypoints)
			}
			b := commandBinary(stringList(cmd))
			if !slices.Contains(config.Binaries(), b) {
				t.Errorf("overlay %s: %s runs %v, no binary internal/config knows", c.name, o, cmd)
				continue
			}
			w := workload{obj: o, container: ct, binary: b, env: map[string]string{}}
			w.pod = getMap(o, "spec", "template", "spec")
			reads := config.EnvVars(b)
			for _, e := range getList(ct, "env") {
				name := getString(e, "name")
				if _, dup := w.env[name]; dup {
					t.Errorf("overlay %s: %s sets %s twice", c.name, o, name)
				}
				if !slices.Contains(reads, name) {
					t.Errorf("overlay %s: %s sets %s, which %s does not read (it reads %s)", c.name, o, name, b, strings.Join(reads, " "))
				}
				w.env[name] = c.resolve(t, o, e)
			}
			if ct["envFrom"] != nil {
				t.Errorf("overlay %s: %s uses envFrom: name each variable so that it can be checked", c.name, o)
			}
			var flags []string
			if args, ok := ct["args"].([]any); ok {
				flags = stringList(args)
			}
			flags = append(flags, stringList(cmd)[1:]...) // subcommand words are no flags and pass
			for _, f := range flags {
				name, _, _ := strings.Cut(strings.TrimLeft(f, "-"), "=")
				if strings.HasPrefix(f, "-") && !slices.ContainsFunc(config.For(b), func(s config.Setting) bool { return s.Flag == name }) {
					t.Errorf("overlay %s: %s passes %s, no flag of %s", c.name, o, f, b)
				}
			}
			for _, st := range config.For(b) {
				if st.RequiredBy(b) && w.env[st.Env] == "" {
					t.Errorf("overlay %s: %s: %s requires %s", c.name, o, b, st.Env)
				}
				if w.env[st.Env] == "" && (strings.Contains(st.Default(), "127.0.0.1") || strings.Contains(st.Default(), "localhost")) {
					t.Errorf("overlay %s: %s: %s defaults to %q, which is the pod itself: set it", c.name, o, st.Env, st.Default())
				}
			}
			cfg, err := config.Load(b, nil, func(k string) string { return w.env[k] })
			if err != nil {
				t.Errorf("overlay %s: %s: %v", c.name, o, err)
				continue
			}
			w.cfg = cfg
			out = append(out, w)
		}
	}
	return out
}

// resolve returns an env entry's value: literal, or from a ConfigMap or
// Secret of the overlay, or a stand-in for an external Secret.
func (c cluster) resolve(t *testing.T, o object, e any) string {
	t.Helper()
	if v, ok := get(e, "value").(string); ok {
		if get(e, "valueFrom") != nil {
			t.Errorf("overlay %s: %s: %s has both value and valueFrom", c.name, o, getString(e, "name"))
		}
		return v
	}
	for kind, field := range map[string]string{"ConfigMap": "configMapKeyRef", "Secret": "secretKeyRef"} {
		ref := getMap(e, "valueFrom", field)
		if ref == nil {
			continue
		}
		name, key := getString(ref, "name"), getString(ref, "key")
		data, ok := c.configs[kind+"/"+name]
		if !ok && kind == "Secret" {
			data, ok = externalSecrets[name]
		}
		if !ok {
			t.Errorf("overlay %s: %s: %s reads %s %s, which neither the overlay nor docs/deploy.md provides", c.name, o, getString(e, "name"), kind, name)
			return ""
		}
		v, ok := data[key]
		if !ok && get(ref, "optional") != true {
			t.Errorf("overlay %s: %s: %s reads key %s of %s %s, which has no such key", c.name, o, getString(e, "name"), key, kind, name)
		}
		return v
	}
	t.Errorf("overlay %s: %s: env %s has neither a value nor a ConfigMap or Secret reference", c.name, o, getString(e, "name"))
	return ""
}

func TestK8sOverlays(t *testing.T) {
	defs, err := fsnats.Defaults()
	if err != nil {
		t.Fatal(err)
	}
	consumers := map[string]fsnats.Consumer{}
	for _, cons := range defs.Consumers {
		consumers[cons.Stream+"/"+cons.Name] = cons
	}
	for _, name := range overlays {
		t.Run(name, func(t *testing.T) {
			c := loadOverlay(t, name)
			ws := c.workloads(t)
			checkWorkloads(t, c, ws)
			checkDeployments(t, c, ws)
			checkScaling(t, c, ws, consumers)
			checkServices(t, c)
			if name == "gpu" {
				checkGPU(t, c, ws)
			}
			blob, ok := c.configs["Secret/facestream-blob"]
			if !ok {
				blob = externalSecrets["facestream-blob"]
			}
			if _, err := events.ParseBlobKey(blob["key"]); err != nil {
				t.Errorf("Secret facestream-blob: key: %v", err)
			}
			for orig, ref := range c.images {
				if ref == orig || !strings.Contains(ref, ":") {
					t.Errorf("image %s is deployed as %q: give it a registry name and tag", orig, ref)
				}
			}
		})
	}
}

func checkWorkloads(t *testing.T, c cluster, ws []workload) {
	byBinary := map[config.Binary][]workload{}
	shared := map[string]map[string]string{} // env -> value -> first workload
	for _, w := range ws {
		byBinary[w.binary] = append(byBinary[w.binary], w)
		if img, _ := w.container["image"].(string); img == "" || !strings.Contains(img, ":") {
			t.Errorf("%s: image %q has no tag: list it under the kustomization's images", w, img)
		}
		// Settings that must agree across binaries: each applies the stream
		// and bucket definitions (create or update), and the model pack is part
		// of the result cache key.
		for _, env := range []string{"FACESTREAM_IMAGE_TTL", "FACESTREAM_RESULTS_MAX_AGE", "FACESTREAM_WORK_MAX_PER_STAGE", "FACESTREAM_MODEL_PACK"} {
			st := setting(t, env)
			if !st.UsedBy(w.binary) {
				continue
			}
			v := st.Value(w.cfg)
			if shared[env] == nil {
				shared[env] = map[string]string{}
			}
			shared[env][v] = w.String()
			if len(shared[env]) > 1 {
				t.Errorf("%s differs between workloads: %v", env, shared[env])
			}
		}
		if slices.Contains(config.EnvVars(w.binary), "FACESTREAM_MODEL_PACK") && !slices.Contains(modelpack.Names(), w.cfg.Models.Pack) {
			t.Errorf("%s: model pack %q is not one of %v", w, w.cfg.Models.Pack, modelpack.Names())
		}
		mounts := map[string]map[string]any{}
		for _, m := range getList(w.container, "volumeMounts") {
			mounts[getString(m, "mountPath")] = m.(map[string]any)
			vol := getString(m, "name")
			if !slices.ContainsFunc(getList(w.pod, "volumes"), func(v any) bool { return getString(v, "name") == vol }) {
				t.Errorf("%s mounts volume %s, which the pod does not declare", w, vol)
			}
		}
		for _, v := range getList(w.pod, "volumes") {
			if claim := getString(v, "persistentVolumeClaim", "claimName"); claim != "" && c.find("PersistentVolumeClaim", claim) == nil {
				t.Errorf("%s uses PersistentVolumeClaim %s, which the overlay does not create", w, claim)
			}
		}
		if slices.Contains(config.EnvVars(w.binary), "FACESTREAM_MODELS") {
			m := mounts[w.cfg.Models.Dir]
			if m == nil {
				t.Errorf("%s: no volume is mounted at the models folder %s", w, w.cfg.Models.Dir)
			} else if get(m, "readOnly") != true && w.binary != config.ModelsCommand {
				t.Errorf("%s: the models folder %s is mounted writable", w, w.cfg.Models.Dir)
			}
		}
		for _, env := range []string{"FACESTREAM_NATS_CREDS", "FACESTREAM_BLOB_KEY_FILE", "FACESTREAM_NATS_TLS_CA", "FACESTREAM_NATS_TLS_CERT", "FACESTREAM_NATS_TLS_KEY"} {
			if file := w.env[env]; file != "" {
				if _, ok := mounts[filepath.Dir(file)]; !ok {
					t.Errorf("%s: %s %s lies in no mounted volume", w, env, file)
				}
			}
		}
		for _, v := range getList(w.pod, "volumes") {
			secret := getString(v, "secret", "secretName")
			if secret == "" {
				continue
			}
			data, ok := c.configs["Secret/"+secret]
			if !ok {
				data, ok = externalSecrets[secret]
			}
			if !ok {
				t.Errorf("%s mounts Secret %s, which neither the overlay nor docs/deploy.md provides", w, secret)
			}
			for _, item := range getList(v, "secret", "items") {
				if _, has := data[getString(item, "key")]; !has && get(v, "secret", "optional") != true {
					t.Errorf("%s mounts key %s of Secret %s, which has no such key", w, getString(item, "key"), secret)
				}
			}
		}
		if get(w.pod, "securityContext", "runAsNonRoot") != true {
			t.Errorf("%s: the pod does not set runAsNonRoot", w)
		}
		if get(w.container, "securityContext", "allowPrivilegeEscalation") != false {
			t.Errorf("%s: allowPrivilegeEscalation is not false", w)
		}
		for _, kind := range []string{"requests", "limits"} {
			for _, res := range []string{"cpu", "memory"} {
				if res == "cpu" && kind == "limits" {
					continue
				}
				if get(w.container, "resources", kind, res) == nil {
					t.Errorf("%s: no %s %s", w, res, kind)
				}
			}
		}
	}
	for _, b := range append(slices.Clone(stageBinaries), config.API, config.Migrate) {
		if len(byBinary[b]) != 1 {
			t.Errorf("%d workloads run %s, want 1", len(byBinary[b]), b)
		}
	}
	for _, w := range byBinary[config.Migrate] {
		if w.obj.kind() != "Job" || stringList(w.container["command"])[2] != "up" {
			t.Errorf("%s: migrations run as a Job of facestream migrate up", w)
		}
	}
}

func setting(t *testing.T, env string) config.Setting {
	t.Helper()
	for _, s := range config.Settings() {
		if s.Env == env {
			return s
		}
	}
	t.Fatalf("internal/config has no setting %s", env)
	return config.Setting{}
}

// port resolves a probe's or Service's port (a name or a number) in a container.
func containerPort(ct map[string]any, port any) (int, bool) {
	for _, p := range getList(ct, "ports") {
		n, _ := strconv.Atoi(fmt.Sprint(get(p, "containerPort")))
		if fmt.Sprint(port) == getString(p, "name") || fmt.Sprint(port) == strconv.Itoa(n) {
			return n, true
		}
	}
	return 0, false
}

func listenPort(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func labelsMatch(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func checkDeployments(t *testing.T, c cluster, ws []workload) {
	for _, d := range c.byKind["Deployment"] {
		sel := getMap(d, "spec", "selector", "matchLabels")
		if !labelsMatch(sel, getMap(d, "spec", "template", "metadata", "labels")) {
			t.Errorf("%s: selector %v does not match the pod template's labels", d, sel)
		}
		if len(podContainers(d)) == 0 {
			t.Errorf("%s has no containers", d)
		}
	}
	for _, w := range ws {
		if w.obj.kind() != "Deployment" {
			continue
		}
		if !slices.Contains(config.EnvVars(w.binary), "FACESTREAM_METRICS_ADDR") || w.cfg.Metrics.Addr == "" {
			t.Errorf("%s: %s serves no /healthz and /readyz", w, w.binary)
			continue
		}
		want := listenPort(t, w.cfg.Metrics.Addr)
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
			p := getMap(w.container, probe)
			if p == nil {
				if probe != "startupProbe" {
					t.Errorf("%s: no %s", w, probe)
				}
				continue
			}
			if got := getString(p, "httpGet", "path"); got != path {
				t.Errorf("%s: %s GET %q, want %s", w, probe, got, path)
			}
			if n, ok := containerPort(w.container, get(p, "httpGet", "port")); !ok || n != want {
				t.Errorf("%s: %s on port %v (%d), want the metrics port %d (FACESTREAM_METRICS_ADDR %s)", w, probe, get(p, "httpGet", "port"), n, want, w.cfg.Metrics.Addr)
			}
		}
		if w.binary == config.API || w.binary == config.Run {
			if _, ok := containerPort(w.container, listenPort(t, w.cfg.HTTP.Addr)); !ok {
				t.Errorf("%s: the HTTP port of %s is not a container port", w, w.cfg.HTTP.Addr)
			}
		}
		if !slices.ContainsFunc(c.byKind["PodDisruptionBudget"], func(p object) bool {
			return labelsMatch(getMap(p, "spec", "selector", "matchLabels"), getMap(w.obj, "spec", "template", "metadata", "labels"))
		}) {
			t.Errorf("%s has no PodDisruptionBudget", w)
		}
	}
	for _, p := range c.byKind["PodDisruptionBudget"] {
		if !slices.ContainsFunc(c.byKind["Deployment"], func(d object) bool {
			return labelsMatch(getMap(p, "spec", "selector", "matchLabels"), getMap(d, "spec", "template", "metadata", "labels"))
		}) {
			t.Errorf("%s selects no Deployment's pods", p)
		}
	}
}

func checkScaling(t *testing.T, c cluster, ws []workload, consumers map[string]fsnats.Consumer) {
	scaled := map[string]string{}
	for _, so := range c.byKind["ScaledObject"] {
		if so.apiVersion() != "keda.sh/v1alpha1" {
			t.Errorf("%s: apiVersion %s", so, so.apiVersion())
		}
		target := getString(so, "spec", "scaleTargetRef", "name")
		var w *workload
		for i := range ws {
			if ws[i].obj.kind() == "Deployment" && ws[i].obj.name() == target {
				w = &ws[i]
			}
		}
		if w == nil {
			t.Errorf("%s scales %q, which is no facestream Deployment", so, target)
			continue
		}
		scaled[target] = so.String()
		maxReplicas, err := strconv.Atoi(fmt.Sprint(get(so, "spec", "maxReplicaCount")))
		if err != nil || maxReplicas < 1 {
			t.Errorf("%s: maxReplicaCount %v", so, get(so, "spec", "maxReplicaCount"))
		}
		triggers := getList(so, "spec", "triggers")
		if len(triggers) == 0 {
			t.Errorf("%s has no triggers", so)
		}
		wantConsumers := []string{fsnats.StreamWork + "/" + string(w.binary)}
		if w.binary == config.Aggregate {
			wantConsumers = append(wantConsumers, fsnats.StreamResults+"/recorder")
		}
		var got []string
		for _, tr := range triggers {
			md := getMap(tr, "metadata")
			if getString(tr, "type") != "nats-jetstream" {
				t.Errorf("%s: trigger type %q, want nats-jetstream", so, getString(tr, "type"))
				continue
			}
			for _, field := range []string{"natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"} {
				if getString(md, field) == "" {
					t.Errorf("%s: trigger without %s (metadata values are strings)", so, field)
				}
			}
			if _, _, err := net.SplitHostPort(getString(md, "natsServerMonitoringEndpoint")); err != nil {
				t.Errorf("%s: natsServerMonitoringEndpoint %q is not host:port", so, getString(md, "natsServerMonitoringEndpoint"))
			}
			if n, err := strconv.Atoi(getString(md, "lagThreshold")); err != nil || n < 1 {
				t.Errorf("%s: lagThreshold %q is not a positive whole number", so, getString(md, "lagThreshold"))
			}
			key := getString(md, "stream") + "/" + getString(md, "consumer")
			got = append(got, key)
			cons, ok := consumers[key]
			if !ok {
				t.Errorf("%s: stream %s has no consumer %s in nats/consumers", so, getString(md, "stream"), getString(md, "consumer"))
				continue
			}
			// Every replica holds up to concurrency handled + concurrency
			// prefetched messages (pkg/events Runner defaults); beyond
			// max_ack_pending extra replicas only wait.
			if perReplica := 2 * w.cfg.Stage.Concurrency; maxReplicas*perReplica > cons.MaxAckPending {
				t.Errorf("%s: %d replicas x %d in flight (concurrency %d + prefetch) exceed consumer %s's max_ack_pending %d",
					so, maxReplicas, perReplica, w.cfg.Stage.Concurrency, key, cons.MaxAckPending)
			}
		}
		slices.Sort(got)
		slices.Sort(wantConsumers)
		if !slices.Equal(got, wantConsumers) {
			t.Errorf("%s (%s) scales on %v, want the consumers it reads: %v", so, w.binary, got, wantConsumers)
		}
	}
	for _, h := range c.byKind["HorizontalPodAutoscaler"] {
		target := getString(h, "spec", "scaleTargetRef", "name")
		if c.find("Deployment", target) == nil {
			t.Errorf("%s scales %q, which is no Deployment", h, target)
		}
		if so, ok := scaled[target]; ok {
			t.Errorf("%s and %s both scale %s", h, so, target)
		}
	}
	for _, d := range c.byKind["Deployment"] {
		if get(d, "spec", "replicas") == nil {
			continue
		}
		for _, h := range c.byKind["HorizontalPodAutoscaler"] {
			if getString(h, "spec", "scaleTargetRef", "name") == d.name() {
				scaled[d.name()] = h.String()
			}
		}
		if by, ok := scaled[d.name()]; ok {
			t.Errorf("%s sets spec.replicas although %s scales it: every kubectl apply would reset the count", d, by)
		}
	}
	if len(c.byKind["ScaledObject"]) == 0 {
		return // dev: one replica each, no KEDA
	}
	for _, w := range ws {
		if slices.Contains(stageBinaries, w.binary) && scaled[w.obj.name()] == "" {
			t.Errorf("%s: the %s stage has no ScaledObject", w, w.binary)
		}
	}
}

func checkServices(t *testing.T, c cluster) {
	podsOf := func(sel map[string]any) []map[string]any {
		var out []map[string]any
		for _, d := range c.byKind["Deployment"] {
			if labelsMatch(sel, getMap(d, "spec", "template", "metadata", "labels")) {
				out = append(out, podContainers(d)...)
			}
		}
		return out
	}
	for _, s := range c.byKind["Service"] {
		cts := podsOf(getMap(s, "spec", "selector"))
		if len(cts) == 0 {
			t.Errorf("%s selects no pods", s)
			continue
		}
		for _, p := range getList(s, "spec", "ports") {
			tp := get(p, "targetPort")
			if tp == nil {
				tp = get(p, "port")
			}
			if !slices.ContainsFunc(cts, func(ct map[string]any) bool { _, ok := containerPort(ct, tp); return ok }) {
				t.Errorf("%s: targetPort %v is no port of its pods", s, tp)
			}
		}
	}
	for _, in := range c.byKind["Ingress"] {
		for _, r := range getList(in, "spec", "rules") {
			for _, p := range getList(r, "http", "paths") {
				svc := getString(p, "backend", "service", "name")
				s := c.find("Service", svc)
				if s == nil {
					t.Errorf("%s routes to Service %s, which does not exist", in, svc)
					continue
				}
				port := get(p, "backend", "service", "port", "name")
				if !slices.ContainsFunc(getList(s, "spec", "ports"), func(sp any) bool { return getString(sp, "name") == port }) {
					t.Errorf("%s routes to port %v of %s, which it lacks", in, port, s)
				}
			}
		}
	}
	for _, pm := range c.byKind["PodMonitor"] {
		cts := podsOf(getMap(pm, "spec", "selector", "matchLabels"))
		if len(cts) == 0 {
			t.Errorf("%s selects no pods", pm)
		}
		for _, e := range getList(pm, "spec", "podMetricsEndpoints") {
			for _, ct := range cts {
				if _, ok := containerPort(ct, getString(e, "port")); !ok {
					t.Errorf("%s scrapes port %s, which a selected pod lacks", pm, getString(e, "port"))
				}
			}
		}
	}
}

func checkGPU(t *testing.T, c cluster, ws []workload) {
	gpuImage := c.images["facestream-gpu"]
	if gpuImage == "" {
		t.Error("the gpu overlay does not set the facestream-gpu image (Dockerfile.gpu)")
	}
	for _, w := range ws {
		onGPU := slices.Contains(gpuStages, w.binary)
		limit := get(w.container, "resources", "limits", "nvidia.com/gpu")
		if !onGPU {
			if limit != nil {
				t.Errorf("%s: %s asks for a GPU it does not use", w, w.binary)
			}
			continue
		}
		if fmt.Sprint(limit) != "1" {
			t.Errorf("%s: nvidia.com/gpu limit %v, want 1", w, limit)
		}
		if w.cfg.ORT.Provider != config.ProviderCUDA {
			t.Errorf("%s: execution provider %s on a GPU node", w, w.cfg.ORT.Provider)
		}
		if w.container["image"] != gpuImage {
			t.Errorf("%s runs %v, want the GPU image %s", w, w.container["image"], gpuImage)
		}
		if len(getMap(w.pod, "nodeSelector")) == 0 {
			t.Errorf("%s: no nodeSelector for GPU nodes", w)
		}
		if !slices.ContainsFunc(getList(w.pod, "tolerations"), func(tol any) bool { return getString(tol, "key") == "nvidia.com/gpu" }) {
			t.Errorf("%s: no toleration for the nvidia.com/gpu taint", w)
		}
	}
}

// TestK8sResolverAgreesOnPatches pins the resolver's strategic merge on the
// cases the overlays rely on: env merged by name, valueFrom: null deleting,
// custom resources' lists replaced.
func TestK8sResolverAgreesOnPatches(t *testing.T) {
	dst := map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "a", "env": []any{
		map[string]any{"name": "X", "valueFrom": map[string]any{"configMapKeyRef": map[string]any{"name": "c", "key": "k"}}},
		map[string]any{"name": "Y", "value": "1"},
	}}}}}
	src := map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "a", "env": []any{
		map[string]any{"name": "X", "value": "cuda", "valueFrom": nil},
		map[string]any{"name": "Z", "value": "2"},
	}}}}}
	merge(dst, src, true)
	env := getList(getList(dst, "spec", "containers")[0], "env")
	if got := fmt.Sprint(env); got != "[map[name:X value:cuda] map[name:Y value:1] map[name:Z value:2]]" {
		t.Errorf("merged env %s", got)
	}
	so := map[string]any{"triggers": []any{"a", "b"}}
	merge(so, map[string]any{"triggers": []any{"c"}}, builtinKind("keda.sh/v1alpha1"))
	if fmt.Sprint(so["triggers"]) != "[c]" {
		t.Errorf("custom resource list merged, not replaced: %v", so["triggers"])
	}
	if !builtinKind("apps/v1") || !builtinKind("v1") || !builtinKind("networking.k8s.io/v1") || builtinKind("monitoring.coreos.com/v1") {
		t.Error("builtinKind misjudges a group")
	}
}
