package service_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/service"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// Every stage binary's --help documents every setting it reads.
func TestMainHelpDocumentsEverySetting(t *testing.T) {
	for _, b := range []config.Binary{config.Ingest, config.Detect, config.Embed, config.Attrs, config.Aggregate} {
		var out bytes.Buffer
		if code := service.Main(b, []string{"--help"}, func(string) string { return "" }, &out); code != 0 {
			t.Fatalf("%s --help: exit %d", b, code)
		}
		for _, s := range config.For(b) {
			if !strings.Contains(out.String(), "--"+s.Flag) || !strings.Contains(out.String(), s.Env) {
				t.Errorf("%s --help does not document %s (%s)", b, s.Flag, s.Env)
			}
		}
	}
}

// A bad setting is refused with exit code 2 before anything starts.
func TestMainRejectsBadConfig(t *testing.T) {
	var out bytes.Buffer
	env := map[string]string{"FACESTREAM_CONCURRENCY": "0"}
	if code := service.Main(config.Detect, nil, func(k string) string { return env[k] }, &out); code != 2 {
		t.Fatalf("exit %d, want 2: %s", code, out.String())
	}
	if !strings.Contains(out.String(), "FACESTREAM_CONCURRENCY") {
		t.Fatalf("error does not name the variable: %s", out.String())
	}
}

func TestHealth(t *testing.T) {
	var h service.Health
	broken := errors.New("down")
	var fail atomic.Bool
	fail.Store(true)
	h.Add("thing", func(context.Context) error {
		if fail.Load() {
			return broken
		}
		return nil
	})
	srv := httptest.NewServer(h.Handler(prometheus.NewRegistry()))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "thing: down") {
		t.Errorf("/readyz while broken: %d %q", code, body)
	}
	fail.Store(false)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz when fine: %d", code)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("/metrics: %d", code)
	}
}

// RunAll serves a submission from a client on its NATS listener and stops
// cleanly when its context ends.
func TestRunAll(t *testing.T) {
	cfg := config.Default()
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Data.Dir = t.TempDir()
	cfg.Metrics.Addr = ""
	cfg.HTTP.Addr = "127.0.0.1:0" // the HTTP edge, on a free port
	cfg.Database.URL = config.Secret(pgtest.NewDSN(t))
	for name, p := range map[string]*string{"FACESTREAM_MODELS": &cfg.Models.Dir, "FACESTREAM_ORT_LIB": &cfg.ORT.Library} {
		if *p = os.Getenv(name); *p == "" {
			t.Fatalf("%s is not set (run the tests with make test)", name)
		}
	}
	data, err := os.ReadFile(os.Getenv("FACESTREAM_TESTDATA") + "/deepface/couple.jpg")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- service.RunAll(ctx, cfg, slog.New(slog.DiscardHandler), func(u string) { urls <- u })
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatalf("run all: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("not ready after 60s")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	results, err := js.OrderedConsumer(ctx, fsnats.StreamResults, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectImageAnalyzed + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := events.NewPublisher(js)
	e, _ := events.NewImageSubmitted(events.Submission{ImageID: "couple", Image: data})
	if _, err := pub.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
	msg, err := results.Next(jetstream.FetchMaxWait(60 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
	if err != nil {
		t.Fatal(err)
	}
	var a events.ImageAnalyzed
	if err := got.Decode(&a); err != nil || len(a.Faces) != 2 {
		t.Fatalf("result %+v, %v: want 2 faces", a, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run all stopped with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run all did not stop within 30s")
	}
}
