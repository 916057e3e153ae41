package deploy_test

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"
	"sigs.k8s.io/yaml"

	"github.com/facestream/facestream/internal/config"
)

// compose is the part of docker-compose.yml the tests look at.
type compose struct {
	Services map[string]service `json:"services"`
}

type service struct {
	Image       string            `json:"image"`
	Build       any               `json:"build"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Volumes     []string          `json:"volumes"`
	Restart     string            `json:"restart"`
	Profiles    []string          `json:"profiles"`
	Healthcheck *struct {
		Test    []string `json:"test"`
		Disable bool     `json:"disable"`
	} `json:"healthcheck"`
	DependsOn map[string]struct {
		Condition string `json:"condition"`
	} `json:"depends_on"`
	Deploy *struct {
		Resources struct {
			Reservations struct {
				Devices []struct {
					Driver       string   `json:"driver"`
					Count        any      `json:"count"`
					Capabilities []string `json:"capabilities"`
				} `json:"devices"`
			} `json:"reservations"`
		} `json:"resources"`
	} `json:"deploy"`
}

func loadCompose(t *testing.T) compose {
	t.Helper()
	return loadComposeFile(t, "../docker-compose.yml")
}

func loadComposeFile(t *testing.T, path string) compose {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var c compose
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s has no services", path)
	}
	return c
}

// gpuOverride is docker-compose.gpu.yml as compose merges it over
// docker-compose.yml: environment merged by name, image, build and command
// replaced. It may only change services the base file has.
func gpuOverride(t *testing.T) (merged compose, changed []string) {
	t.Helper()
	merged = loadCompose(t)
	over := loadComposeFile(t, "../docker-compose.gpu.yml")
	for name, o := range over.Services {
		s, ok := merged.Services[name]
		if !ok {
			t.Errorf("docker-compose.gpu.yml adds service %s, which docker-compose.yml lacks", name)
			continue
		}
		env := map[string]string{}
		for k, v := range s.Environment {
			env[k] = v
		}
		for k, v := range o.Environment {
			env[k] = v
		}
		s.Environment = env
		if o.Image != "" {
			s.Image = o.Image
		}
		if o.Build != nil {
			s.Build = o.Build
		}
		if o.Command != nil {
			s.Command = o.Command
		}
		s.Deploy = o.Deploy
		merged.Services[name] = s
		changed = append(changed, name)
	}
	return merged, changed
}

// ours reports whether a service runs the facestream image.
func (s service) ours() bool {
	return s.Build != nil || strings.Contains(s.Image, "facestream")
}

// binary says which facestream binary a service runs.
func (s service) binary(t *testing.T, name string) config.Binary {
	t.Helper()
	if len(s.Command) == 0 {
		t.Fatalf("service %s: no command", name)
	}
	var b config.Binary
	switch exe := s.Command[0]; {
	case exe == "facestream" || exe == "/usr/local/bin/facestream":
		if len(s.Command) < 2 {
			t.Fatalf("service %s: facestream without a subcommand", name)
		}
		b = config.Binary(s.Command[1])
	case strings.HasPrefix(exe, "/usr/local/bin/"):
		b = config.Binary(strings.TrimPrefix(exe, "/usr/local/bin/"))
	default:
		t.Fatalf("service %s: command %v is no facestream binary", name, s.Command)
	}
	if !slices.Contains(config.Binaries(), b) {
		t.Fatalf("service %s: %s is not a binary internal/config knows", name, b)
	}
	return b
}

var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// expand applies compose's ${VAR:-default} interpolation with no variables set.
func expand(v string) string {
	return interpolation.ReplaceAllString(v, "$2")
}

func TestComposeServicesMatchConfig(t *testing.T) {
	t.Run("docker-compose.yml", func(t *testing.T) { checkComposeServices(t, loadCompose(t)) })
	t.Run("with docker-compose.gpu.yml", func(t *testing.T) {
		c, changed := gpuOverride(t)
		checkComposeServices(t, c)
		slices.Sort(changed)
		if !slices.Equal(changed, []string{"detect", "embed"}) {
			t.Errorf("docker-compose.gpu.yml changes %v, want detect and embed", changed)
		}
		for _, name := range changed {
			s := c.Services[name]
			cfg, err := config.Load(s.binary(t, name), nil, func(k string) string { return expand(s.Environment[k]) })
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ORT.Provider != config.ProviderCUDA {
				t.Errorf("%s: execution provider %s with the GPU override", name, cfg.ORT.Provider)
			}
			if !strings.Contains(expand(s.Image), "gpu") || !strings.Contains(fmt.Sprint(s.Build), "Dockerfile.gpu") {
				t.Errorf("%s: image %s, build %v: want the image of Dockerfile.gpu", name, s.Image, s.Build)
			}
			if s.Deploy == nil || len(s.Deploy.Resources.Reservations.Devices) == 0 ||
				s.Deploy.Resources.Reservations.Devices[0].Driver != "nvidia" ||
				!slices.Contains(s.Deploy.Resources.Reservations.Devices[0].Capabilities, "gpu") {
				t.Errorf("%s reserves no NVIDIA GPU", name)
			}
		}
	})
}

func checkComposeServices(t *testing.T, c compose) {
	seen := map[config.Binary]bool{}
	for name, s := range c.Services {
		if !s.ours() {
			continue
		}
		b := s.binary(t, name)
		seen[b] = true
		reads := config.EnvVars(b)
		env := map[string]string{}
		for k, v := range s.Environment {
			if !slices.Contains(reads, k) {
				t.Errorf("service %s sets %s, which %s does not read (it reads %s)", name, k, b, strings.Join(reads, " "))
			}
			env[k] = expand(v)
		}
		for _, st := range config.For(b) {
			switch {
			case st.RequiredBy(b) && env[st.Env] == "":
				t.Errorf("service %s: %s requires %s", name, b, st.Env)
			case env[st.Env] == "" && (strings.Contains(st.Default(), "127.0.0.1") || strings.Contains(st.Default(), "localhost")):
				t.Errorf("service %s: %s defaults to %q, which is the container itself: set it", name, st.Env, st.Default())
			}
		}
		cfg, err := config.Load(b, nil, func(k string) string { return env[k] })
		if err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		if slices.Contains(reads, "FACESTREAM_MODELS") && !mountedReadOnly(s.Volumes, cfg.Models.Dir) {
			t.Errorf("service %s: models folder %s is not mounted read-only (volumes %v)", name, cfg.Models.Dir, s.Volumes)
		}
	}
	for _, b := range []config.Binary{config.Ingest, config.Detect, config.Embed, config.Attrs, config.Aggregate, config.API, config.Migrate, config.Run} {
		if !seen[b] {
			t.Errorf("no service runs %s", b)
		}
	}
}

func mountedReadOnly(volumes []string, dir string) bool {
	for _, v := range volumes {
		parts := strings.Split(expand(v), ":")
		if len(parts) == 3 && parts[1] == dir && parts[2] == "ro" {
			return true
		}
	}
	return false
}

func TestComposeServicesAreHealthChecked(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		oneShot := s.Restart == "no"
		checked := s.Healthcheck != nil && !s.Healthcheck.Disable && len(s.Healthcheck.Test) > 0
		if !oneShot && !checked {
			t.Errorf("service %s runs for good without a health check", name)
		}
		for dep, d := range s.DependsOn {
			want := "service_healthy"
			if c.Services[dep].Restart == "no" {
				want = "service_completed_successfully"
			}
			if d.Condition != want {
				t.Errorf("service %s waits for %s with %q, want %q", name, dep, d.Condition, want)
			}
		}
	}
	if m := c.Services["migrate"]; len(m.Command) < 3 || m.Command[1] != "migrate" || m.Command[2] != "up" || m.Restart != "no" {
		t.Errorf("migrate service: command %v, restart %q; want a one-shot facestream migrate up", m.Command, m.Restart)
	}
}

func TestComposeInfrastructure(t *testing.T) {
	c := loadCompose(t)
	nats := c.Services["nats"]
	m := regexp.MustCompile(`^nats:(\d+)\.(\d+)`).FindStringSubmatch(nats.Image)
	if m == nil {
		t.Fatalf("nats service image %q has no version tag", nats.Image)
	}
	if major, _ := strconv.Atoi(m[1]); major != 2 {
		t.Errorf("nats image %s: want 2.10 or later", nats.Image)
	} else if minor, _ := strconv.Atoi(m[2]); minor < 10 {
		t.Errorf("nats image %s: want 2.10 or later", nats.Image)
	}
	if pg := c.Services["postgres"].Image; !strings.HasPrefix(pg, "pgvector/pgvector:pg") {
		t.Errorf("postgres image %q does not ship pgvector", pg)
	}

	// The real server's parser reads the mounted configuration.
	opts, err := server.ProcessConfigFile("nats/nats.conf")
	if err != nil {
		t.Fatalf("nats/nats.conf: %v", err)
	}
	if !opts.JetStream {
		t.Error("nats/nats.conf does not enable JetStream")
	}
	if !slices.ContainsFunc(nats.Volumes, func(v string) bool { return strings.HasPrefix(v, "./deploy/nats/nats.conf:") }) {
		t.Errorf("the nats service does not mount deploy/nats/nats.conf: %v", nats.Volumes)
	}
	for name, s := range c.Services {
		v, ok := s.Environment["FACESTREAM_INLINE_PAYLOAD_MAX"]
		if !ok {
			continue
		}
		inline, err := config.ParseByteSize(expand(v))
		if err != nil {
			t.Fatal(err)
		}
		// Headers (CloudEvent attributes, trace context) ride along: leave a margin.
		if int64(inline)+64<<10 > int64(opts.MaxPayload) {
			t.Errorf("service %s: inline payloads up to %s do not fit NATS max_payload %d", name, inline, opts.MaxPayload)
		}
	}
}

// assignment finds NAME=value (after an optional ARG) in a shell script or Dockerfile.
func assignment(t *testing.T, text, file, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^(?:ARG\s+)?`+name+`=(\S+)\s*$`).FindAllStringSubmatch(text, -1)
	if len(m) == 0 {
		t.Fatalf("%s sets no %s", file, name)
	}
	v := m[0][1]
	for _, other := range m[1:] {
		if other[1] != v {
			t.Errorf("%s sets %s to both %s and %s", file, name, v, other[1])
		}
	}
	return strings.Trim(v, `"'`)
}

func TestDockerfilePinsTheSetupScriptsRuntime(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	sh, err := os.ReadFile("../scripts/setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, setup := string(df), string(sh)
	for _, name := range []string{"ORT_VERSION", "ORT_SHA256"} {
		if d, s := assignment(t, dockerfile, "Dockerfile", name), assignment(t, setup, "scripts/setup.sh", name); d != s {
			t.Errorf("%s: Dockerfile has %s, scripts/setup.sh has %s", name, d, s)
		}
	}
	if v := assignment(t, dockerfile, "Dockerfile", "ORT_VERSION"); !strings.HasPrefix(v, "1.30.") {
		t.Errorf("ORT_VERSION %s: the stack pins ONNX Runtime 1.30", v)
	}
	const member = "package/bin/napi-v6/linux/x64/libonnxruntime.so.1"
	for file, text := range map[string]string{"Dockerfile": dockerfile, "scripts/setup.sh": setup} {
		if !strings.Contains(text, member) || !strings.Contains(text, "onnxruntime-node@") || !strings.Contains(text, "sha256sum") {
			t.Errorf("%s does not take %s from onnxruntime-node and check its sha256", file, member)
		}
	}
	for _, want := range []string{"-bookworm AS build", "libopencv-dev", "./cmd/...", "FROM debian:bookworm-slim", "deploy/runtime-packages.sh"} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(dockerfile, -1)
	if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "root") || strings.HasPrefix(users[len(users)-1][1], "0") {
		t.Errorf("the runtime stage does not run as a non-root user: %v", users)
	}
}

// TestComposeMountsExist: a bind mount of a missing file makes Docker create
// an empty directory in its place, and the service fails in a confusing way.
func TestComposeMountsExist(t *testing.T) {
	c := loadCompose(t)
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			host := strings.Split(expand(v), ":")[0]
			if !strings.HasPrefix(host, "./deploy/") {
				continue // named volumes, and ./models, which the user provides
			}
			if _, err := os.Stat("../" + strings.TrimPrefix(host, "./")); err != nil {
				t.Errorf("service %s mounts %s: %v", name, host, err)
			}
		}
	}
}
