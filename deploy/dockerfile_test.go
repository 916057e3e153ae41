package deploy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/facestream/facestream/internal/config"
)

// openCVOf is the OpenCV each gocv release compiles against: gocv v0.32.1
// and later need OpenCV >= 4.7, which neither Debian 12 nor Ubuntu 24.04 ship.
var openCVOf = map[string]string{"v0.31.0": "4.6"}

// distroOpenCV is the OpenCV of libopencv-dev on the build bases we use.
var distroOpenCV = map[string]string{
	"golang:${GO_VERSION}-bookworm": "4.6", // Debian 12: 4.6.0
	"ubuntu:24.04":                  "4.6", // Ubuntu 24.04: 4.6.0
}

// stage is one FROM of a Dockerfile and the lines that follow it.
type stage struct {
	base, name string
	body       string
}

func dockerStages(text string) []stage {
	var out []stage
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "FROM" {
			s := stage{base: f[1]}
			if len(f) >= 4 && strings.EqualFold(f[2], "AS") {
				s.name = f[3]
			}
			out = append(out, s)
			continue
		}
		if len(out) > 0 {
			out[len(out)-1].body += line + "\n"
		}
	}
	return out
}

func gocvVersion(t *testing.T) string {
	t.Helper()
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*gocv\.io/x/gocv (v\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require gocv.io/x/gocv")
	}
	return string(m[1])
}

func TestDockerfiles(t *testing.T) {
	setup, err := os.ReadFile("../scripts/setup.sh")
	if err != nil {
		t.Fatal(err)
	}
	ortVersion := assignment(t, string(setup), "scripts/setup.sh", "ORT_VERSION")
	wantCV, ok := openCVOf[gocvVersion(t)]
	if !ok {
		t.Fatalf("gocv %s: which OpenCV does it need? Add it to openCVOf and check the Dockerfiles' bases", gocvVersion(t))
	}
	files, _ := filepath.Glob("../Dockerfile*")
	if len(files) < 2 {
		t.Fatalf("want Dockerfile and Dockerfile.gpu, found %v", files)
	}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text, name := string(raw), filepath.Base(file)
		if v := assignment(t, text, name, "ORT_VERSION"); v != ortVersion {
			t.Errorf("%s: ORT_VERSION %s, scripts/setup.sh has %s", name, v, ortVersion)
		}
		stages := dockerStages(text)
		if len(stages) < 3 {
			t.Errorf("%s: %d stages; want at least a library, a build and a runtime stage", name, len(stages))
			continue
		}
		final := stages[len(stages)-1]
		var build *stage
		for i := range stages {
			if strings.Contains(stages[i].body, "libopencv-dev") {
				build = &stages[i]
			}
		}
		switch {
		case build == nil:
			t.Errorf("%s: no stage installs libopencv-dev for gocv", name)
		case distroOpenCV[build.base] == "":
			t.Errorf("%s: build stage on %s, whose OpenCV is unknown to this test", name, build.base)
		case distroOpenCV[build.base] != wantCV:
			t.Errorf("%s: build stage on %s has OpenCV %s; gocv %s needs %s", name, build.base, distroOpenCV[build.base], gocvVersion(t), wantCV)
		default:
			if !strings.Contains(build.body, "./cmd/...") || !strings.Contains(build.body, "deploy/runtime-packages.sh") {
				t.Errorf("%s: the build stage must build ./cmd/... and list its runtime packages with deploy/runtime-packages.sh", name)
			}
			// runtime-packages.sh names the build distro's packages: the runtime must be the same distro.
			if !sameDistro(t, text, build.base, final.base) {
				t.Errorf("%s: build stage on %s but runtime on %s: the runtime packages would not match", name, build.base, final.base)
			}
		}
		if strings.Contains(final.body, "libopencv-dev") || strings.Contains(final.body, "golang") {
			t.Errorf("%s: the runtime stage installs build tools", name)
		}
		for _, want := range []string{"HEALTHCHECK", "facestream-healthcheck", "runtime-packages.txt", "FACESTREAM_ORT_LIB="} {
			if !strings.Contains(final.body, want) {
				t.Errorf("%s: the runtime stage lacks %s", name, want)
			}
		}
		users := regexp.MustCompile(`(?m)^USER\s+(\S+)`).FindAllStringSubmatch(final.body, -1)
		if len(users) == 0 || strings.HasPrefix(users[len(users)-1][1], "root") || strings.HasPrefix(users[len(users)-1][1], "0") {
			t.Errorf("%s: the runtime stage does not run as a non-root user: %v", name, users)
		}
		for _, m := range regexp.MustCompile(`\b(FACESTREAM_[A-Z0-9_]+)=`).FindAllStringSubmatch(text, -1) {
			if !slices.ContainsFunc(config.Settings(), func(s config.Setting) bool { return s.Env == m[1] }) {
				t.Errorf("%s sets %s, which no binary reads", name, m[1])
			}
		}
	}
}

func sameDistro(t *testing.T, text, build, runtime string) bool {
	t.Helper()
	// Resolve ${ARG} defaults of the form ARG NAME=value.
	if m := regexp.MustCompile(`^\$\{(\w+)\}$`).FindStringSubmatch(runtime); m != nil {
		runtime = assignment(t, text, "Dockerfile", m[1])
	}
	switch {
	case strings.Contains(build, "bookworm"):
		return strings.Contains(runtime, "bookworm")
	case build == "ubuntu:24.04":
		return runtime == "ubuntu:24.04" || strings.HasSuffix(runtime, "ubuntu24.04")
	}
	return false
}

func TestDockerfileGPUFetchesCheckedORT(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile.gpu")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{
		"ARG ORT_GPU_TARBALL=onnxruntime-linux-x64-gpu-${ORT_VERSION}.tgz", // the CUDA 12 build of the release
		"libonnxruntime_providers_cuda.so",
		"sha256sum -c",
		"libonnxruntime*.so*", // with libonnxruntime_providers_cuda.so and _shared.so
		"FACESTREAM_EXECUTION_PROVIDER=cuda",
		"cudnn-runtime",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile.gpu lacks %q", want)
		}
	}
	m := regexp.MustCompile(`(?m)^ARG ORT_GPU_SHA256=(\S*)\s*$`).FindStringSubmatch(text)
	switch {
	case m == nil:
		t.Error("Dockerfile.gpu declares no ARG ORT_GPU_SHA256")
	case m[1] == "":
		// Not pinned yet: the build must refuse to go on without one.
		if !strings.Contains(text, `if [ -z "${ORT_GPU_SHA256}" ]`) || !strings.Contains(text, "NOT PINNED") {
			t.Error("Dockerfile.gpu neither pins ORT_GPU_SHA256 nor refuses to build without it")
		}
	case !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(m[1]):
		t.Errorf("ORT_GPU_SHA256 %q is not a sha256", m[1])
	}
}

func TestDockerignoreKeepsTheBuildInputs(t *testing.T) {
	raw, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	var patterns []string
	for _, l := range strings.Split(string(raw), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	ignored := func(path string) bool {
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, path); ok || strings.HasPrefix(path, p+"/") {
				return true
			}
		}
		return false
	}
	keep := []string{"go.mod", "go.sum", "cmd", "internal", "pkg", "nats", "migrations", "deploy/healthcheck.sh", "deploy/runtime-packages.sh"}
	// Everything a Dockerfile COPYs from the context must be in it.
	files, _ := filepath.Glob("../Dockerfile*")
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`(?m)^COPY\s+(?:--chmod=\S+\s+)?(\S+)\s`).FindAllStringSubmatch(string(text), -1) {
			if m[1] != "." && !strings.HasPrefix(m[1], "--from") {
				keep = append(keep, m[1])
			}
		}
	}
	for _, keep := range keep {
		if ignored(keep) {
			t.Errorf(".dockerignore drops %s, which the image build needs", keep)
		}
	}
	for _, drop := range []string{".git", ".deps", ".data", "models", "bin"} {
		if !ignored(drop) {
			t.Errorf(".dockerignore sends %s to the build context", drop)
		}
	}
}
