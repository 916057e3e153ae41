package config_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/facestream/facestream/internal/config"
)

// env is a fake environment; it records what was read.
type env struct {
	vars map[string]string
	read []string
}

func (e *env) getenv(k string) string {
	e.read = append(e.read, k)
	return e.vars[k]
}

func newEnv(kv ...string) *env {
	e := &env{vars: map[string]string{}}
	for i := 0; i < len(kv); i += 2 {
		e.vars[kv[i]] = kv[i+1]
	}
	return e
}

func TestTableIsConsistent(t *testing.T) {
	seen := map[string]string{}
	for _, s := range config.Settings() {
		for _, key := range []string{"name " + s.Name, "flag " + s.Flag, "env " + s.Env} {
			if prev, dup := seen[key]; dup {
				t.Errorf("%s: %s already used by %s", s.Name, key, prev)
			}
			seen[key] = s.Name
		}
		if want := "FACESTREAM_" + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")); s.Env != want {
			t.Errorf("%s: env %s, want %s (FACESTREAM_ + the flag)", s.Name, s.Env, want)
		}
		if s.Help == "" || len(s.Uses) == 0 {
			t.Errorf("%s: no help or no binaries", s.Name)
		}
		for _, b := range s.Requires {
			if !s.UsedBy(b) {
				t.Errorf("%s: required by %s, which does not use it", s.Name, b)
			}
		}
		if s.Secret && s.Default() != "" {
			t.Errorf("%s: a secret with a default", s.Name)
		}
	}
	if err := config.Default().Validate(); err != nil {
		t.Errorf("Default() is invalid: %v", err)
	}
	// Every default survives a trip through the environment.
	e := newEnv()
	for _, s := range config.Settings() {
		e.vars[s.Env] = s.Default()
	}
	e.vars["FACESTREAM_DATABASE_URL"] = "postgres://db/x"
	for _, b := range config.Binaries() {
		c, err := config.Load(b, nil, e.getenv)
		if err != nil {
			t.Fatalf("Load(%s) with the defaults spelled out: %v", b, err)
		}
		want := config.Default()
		for _, s := range config.For(b) {
			if s.Env == "FACESTREAM_DATABASE_URL" {
				continue
			}
			if got := s.Value(c); got != s.Value(want) {
				t.Errorf("%s: %s round-trips to %q", b, s.Name, got)
			}
		}
	}
}

func TestEnvVars(t *testing.T) {
	if got, want := config.EnvVars(config.Migrate), []string{"FACESTREAM_DATABASE_URL", "FACESTREAM_LOG_LEVEL", "FACESTREAM_LOG_FORMAT"}; !slices.Equal(got, want) {
		t.Errorf("EnvVars(migrate) = %v, want %v", got, want)
	}
	detect := config.EnvVars(config.Detect)
	for _, want := range []string{"FACESTREAM_NATS_URL", "FACESTREAM_MODELS", "FACESTREAM_ORT_LIB", "FACESTREAM_EXECUTION_PROVIDER", "FACESTREAM_CONCURRENCY"} {
		if !slices.Contains(detect, want) {
			t.Errorf("detect does not read %s", want)
		}
	}
	for _, never := range []string{"FACESTREAM_DATABASE_URL", "FACESTREAM_HTTP_ADDR", "FACESTREAM_EMBED_BATCH_SIZE", "FACESTREAM_DATA_DIR"} {
		if slices.Contains(detect, never) {
			t.Errorf("detect reads %s", never)
		}
	}
	for _, b := range config.Binaries() {
		if len(config.EnvVars(b)) == 0 {
			t.Errorf("%s reads nothing", b)
		}
	}
}

func TestLoadPrecedence(t *testing.T) {
	fs := pflag.NewFlagSet("detect", pflag.ContinueOnError)
	config.AddFlags(fs, config.Detect)
	if err := fs.Parse([]string{"--concurrency=3", "--cpu-fallback=false", "--execution-provider", "cuda"}); err != nil {
		t.Fatal(err)
	}
	e := newEnv(
		"FACESTREAM_CONCURRENCY", "5", // overridden by the flag
		"FACESTREAM_INTRA_OP_THREADS", "2", // only in the environment
		"FACESTREAM_HTTP_ADDR", "not-an-address", // not detect's: ignored
	)
	c, err := config.Load(config.Detect, fs, e.getenv)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if c.Stage.Concurrency != 3 || c.ORT.IntraOpThreads != 2 || c.ORT.CPUFallback || c.ORT.Provider != "cuda" {
		t.Errorf("got concurrency %d, intra-op %d, cpu-fallback %v, provider %s; want 3, 2, false, cuda",
			c.Stage.Concurrency, c.ORT.IntraOpThreads, c.ORT.CPUFallback, c.ORT.Provider)
	}
	if c.Embed.BatchSize != config.Default().Embed.BatchSize || c.Models != config.Default().Models {
		t.Errorf("unset settings moved from their defaults: %+v %+v", c.Embed, c.Models)
	}
	if want := config.EnvVars(config.Detect); !slices.Equal(e.read, want) {
		t.Errorf("Load read %v, want exactly detect's variables %v", e.read, want)
	}

	// A bool flag without a value means true; the env said false.
	fs = pflag.NewFlagSet("embed", pflag.ContinueOnError)
	config.AddFlags(fs, config.Embed)
	if err := fs.Parse([]string{"--cpu-fallback"}); err != nil {
		t.Fatal(err)
	}
	if c, err := config.Load(config.Embed, fs, newEnv("FACESTREAM_CPU_FALLBACK", "false").getenv); err != nil || !c.ORT.CPUFallback {
		t.Errorf("--cpu-fallback over FACESTREAM_CPU_FALLBACK=false: %v, %v", c.ORT.CPUFallback, err)
	}
}

func TestLoadRejectsBadValues(t *testing.T) {
	tests := []struct {
		binary   config.Binary
		key, val string
		want     string
	}{
		{config.Detect, "FACESTREAM_CONCURRENCY", "many", "--concurrency (FACESTREAM_CONCURRENCY): from the environment: want a whole number"},
		{config.Detect, "FACESTREAM_CONCURRENCY", "0", "must be between 1 and 4096"},
		{config.Detect, "FACESTREAM_EXECUTION_PROVIDER", "rocm", `"rocm" is not one of cpu, cuda, tensorrt`},
		{config.Detect, "FACESTREAM_CPU_FALLBACK", "maybe", "want true or false"},
		{config.Embed, "FACESTREAM_EMBED_BATCH_MAX_WAIT", "10", "want a duration"},
		{config.Embed, "FACESTREAM_EMBED_BATCH_SIZE", "0", "--embed-batch-size"},
		{config.Ingest, "FACESTREAM_MAX_IMAGE_BYTES", "lots", "parse byte size"},
		{config.Ingest, "FACESTREAM_INLINE_PAYLOAD_MAX", "100MiB", "must be between 1KiB and 64MiB"},
		{config.Ingest, "FACESTREAM_NATS_URL", "http://x:4222", "scheme must be nats, tls, ws or wss"},
		{config.Ingest, "FACESTREAM_NATS_TLS_CERT", "/c.pem", "set both or neither"},
		{config.API, "FACESTREAM_HTTP_ADDR", "8080", "want host:port"},
		{config.API, "FACESTREAM_LOG_LEVEL", "loud", "--log-level (FACESTREAM_LOG_LEVEL)"},
		{config.Run, "FACESTREAM_IMAGE_TTL", "-1m", "must be positive"},
		{config.Run, "FACESTREAM_DATABASE_URL", "mysql://u:hunter2@h/db", "is not a postgres:// URL"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.val, func(t *testing.T) {
			e := newEnv(tt.key, tt.val)
			if tt.key != "FACESTREAM_DATABASE_URL" {
				e.vars["FACESTREAM_DATABASE_URL"] = "postgres://h/db"
			}
			_, err := config.Load(tt.binary, nil, e.getenv)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v; want an error containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows a password: %v", err)
			}
		})
	}
}

func TestLoadRequires(t *testing.T) {
	for _, b := range []config.Binary{config.Aggregate, config.API, config.Run, config.Migrate} {
		_, err := config.Load(b, nil, newEnv().getenv)
		if err == nil || !strings.Contains(err.Error(), "--database-url (FACESTREAM_DATABASE_URL): required by "+string(b)) {
			t.Errorf("Load(%s) without a database: %v", b, err)
		}
	}
	// Ingest uses the database for its cache, but runs without one.
	if _, err := config.Load(config.Ingest, nil, newEnv().getenv); err != nil {
		t.Errorf("Load(ingest) without a database: %v", err)
	}
	// Bad flag syntax fails at parse time, with the flag named.
	fs := pflag.NewFlagSet("migrate", pflag.ContinueOnError)
	fs.SetOutput(new(bytes.Buffer))
	config.AddFlags(fs, config.Migrate)
	if err := fs.Parse([]string{"--log-level", "x", "--database-url=y"}); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(config.Migrate, fs, newEnv().getenv); err == nil || !strings.Contains(err.Error(), "--log-level") || !strings.Contains(err.Error(), "--database-url") {
		t.Errorf("Load with two bad flags: %v; want both named", err)
	}
}

func TestSecretsAreRedacted(t *testing.T) {
	e := newEnv(
		"FACESTREAM_DATABASE_URL", "postgres://facestream:hunter2@db:5432/facestream?sslmode=disable",
		"FACESTREAM_NATS_URL", "nats://svc:hunter3@nats:4222,nats://n2:4222",
		"FACESTREAM_NATS_CREDS", "/run/secrets/hunter4.creds",
	)
	c, err := config.Load(config.Aggregate, nil, e.getenv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database.URL.Value() != e.vars["FACESTREAM_DATABASE_URL"] || c.NATS.CredsFile.Value() != e.vars["FACESTREAM_NATS_CREDS"] {
		t.Fatalf("Value does not give the secret back")
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("start", "config", c, "db", c.Database.URL)
	var textLogged bytes.Buffer
	slog.New(slog.NewTextHandler(&textLogged, nil)).Info("start", "config", c, "database", c.Database)
	js, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	forms := map[string]string{
		"String":    c.String(),
		"%v":        fmt.Sprintf("%v", c),
		"%+v":       fmt.Sprintf("%+v", c),
		"%#v":       fmt.Sprintf("%#v", c),
		"%s secret": fmt.Sprintf("%s %q %x", c.Database.URL, c.Database.URL, c.Database.URL),
		"slog json": logged.String(),
		"slog text": textLogged.String(),
		"json":      string(js),
	}
	for name, out := range forms {
		for _, secret := range []string{"hunter2", "hunter3", "hunter4"} {
			if strings.Contains(out, secret) {
				t.Errorf("%s shows %s: %s", name, secret, out)
			}
		}
	}
	if s := c.String(); !strings.Contains(s, "database.url=postgres://facestream:xxxxx@db:5432/facestream?sslmode=disable") ||
		!strings.Contains(s, "nats.url=nats://xxxxx@nats:4222,nats://n2:4222") || !strings.Contains(s, "nats.creds=REDACTED") {
		t.Errorf("String() redacts too much or too little: %s", s)
	}
	for in, want := range map[string]string{
		"host=db user=fs password='a b' dbname=x": "host=db user=fs password=xxxxx dbname=x",
		"postgres://db/x?password=hunter2":        "postgres://db/x?password=xxxxx",
		"postgres://fs@db/x":                      "postgres://fs@db/x",
		"plain-token":                             "REDACTED",
		"":                                        "",
	} {
		if got := config.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHelpDocumentsEverySetting renders each binary's --help through cobra,
// as the binaries do, and looks for every setting it reads: flag, variable,
// default and meaning; and for no setting it does not read.
func TestHelpDocumentsEverySetting(t *testing.T) {
	for _, b := range config.Binaries() {
		cmd := &cobra.Command{Use: string(b), Run: func(*cobra.Command, []string) {}}
		config.AddFlags(cmd.Flags(), b)
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"--help"})
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		help := out.String()
		for _, s := range config.Settings() {
			has := strings.Contains(help, "--"+s.Flag+" ")
			if has != s.UsedBy(b) {
				t.Errorf("%s --help: flag --%s present %v, used %v", b, s.Flag, has, s.UsedBy(b))
				continue
			}
			if !has {
				continue
			}
			line := lineWith(help, "--"+s.Flag+" ")
			want := []string{s.Env, s.Help}
			switch {
			case s.RequiredBy(b):
				want = append(want, "required")
			case s.Secret:
				want = append(want, "secret")
			case s.Default() == "":
				want = append(want, `default ""`)
			default:
				want = append(want, "default "+s.Default())
			}
			for _, w := range want {
				if !strings.Contains(line, w) {
					t.Errorf("%s --help: the line of --%s lacks %q: %s", b, s.Flag, w, line)
				}
			}
		}
	}
}

func lineWith(text, sub string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			return l
		}
	}
	return ""
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]config.ByteSize{
		"0": 0, "1048576": 1 << 20, "8MiB": 8 << 20, "8 MiB": 8 << 20, "512KiB": 512 << 10, "2GiB": 2 << 30,
		"500kB": 500_000, "3MB": 3_000_000, "7B": 7,
	} {
		got, err := config.ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1.5MiB", "8TiB", "99999999999GiB"} {
		if _, err := config.ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", bad)
		}
	}
	for in, want := range map[config.ByteSize]string{0: "0", 1 << 20: "1MiB", 768 << 10: "768KiB", 1000: "1000", 3 << 30: "3GiB"} {
		if got := in.String(); got != want {
			t.Errorf("ByteSize(%d).String() = %q, want %q", int64(in), got, want)
		}
	}
}

func TestLogger(t *testing.T) {
	var out bytes.Buffer
	l := config.Log{Level: "warn", Format: config.LogJSON}.Logger(&out)
	l.Info("hidden")
	l.Warn("shown", "n", 1)
	var rec map[string]any
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil || rec["msg"] != "shown" {
		t.Errorf("logger wrote %q (%v)", out.String(), err)
	}
}

func TestValidateJoinsErrors(t *testing.T) {
	c := config.Default()
	c.Stage.Concurrency = 0
	c.Log.Format = "xml"
	c.Embed.BatchMaxWait = -time.Second
	err := c.Validate()
	for _, want := range []string{"--concurrency", "--log-format", "--embed-batch-max-wait"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v; want it to name %s", err, want)
		}
	}
	if errors.Unwrap(err) != nil {
		t.Logf("joined: %v", err)
	}
}
