package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/internal/stages/stagetest"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

const (
	alertsFile   = "../../deploy/prometheus/alerts.yml"
	dashboardDir = "../../deploy/grafana"
)

// notOurs are metrics the rules and dashboard may name that the pipeline
// run of runAndScrape does not export: Prometheus's own, and the circuit
// breaker's. The HTTP edge's, per-key usage included, are exported: the run
// sends one image through POST /v1/analyze with an API key.
var notOurs = map[string]bool{
	"up":                       true,
	"facestream_breaker_state": true, // the database circuit breaker, where configured
}

var promql = parser.NewParser(parser.Options{})

// TestAlertRulesParse checks deploy/prometheus/alerts.yml with Prometheus's
// own rule-file parser (rulefmt: structure, durations, templates, PromQL).
func TestAlertRulesParse(t *testing.T) {
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	if groups == nil {
		t.Fatal("no rule groups")
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
		}
	}
	for _, want := range []string{"FacestreamResponseTimeHigh", "FacestreamErrorRateHigh", "FacestreamMemoryHigh", "FacestreamConsumerLagHigh", "FacestreamDeadLetters"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("alerts.yml has no %s", want)
		}
	}
}

// exprs returns every PromQL expression of the rules and the dashboards,
// with Grafana's variables replaced.
func exprs(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, promql, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert] = r.Expr
		}
	}
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards in %s (%v)", dashboardDir, err)
	}
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$job", ".*", "${datasource}", "prometheus")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range d.Panels {
			for i, tg := range p.Targets {
				out[filepath.Base(f)+": "+p.Title+" #"+string(rune('A'+i))] = vars.Replace(tg.Expr)
			}
		}
	}
	return out
}

// TestDashboardQueriesParse parses every dashboard query as PromQL.
func TestDashboardQueriesParse(t *testing.T) {
	for where, e := range exprs(t) {
		if _, err := promql.ParseExpr(e); err != nil {
			t.Errorf("%s: %v\n%s", where, err, e)
		}
	}
}

// TestRulesAndDashboardNameExportedMetrics runs the all-in-one pipeline
// (service.RunAll, as `facestream run`), sends one image with a face and
// one that is rejected, scrapes its /metrics and checks that every metric
// the alert rules and the dashboards name is exported.
func TestRulesAndDashboardNameExportedMetrics(t *testing.T) {
	named := map[string][]string{}
	for where, e := range exprs(t) {
		expr, err := promql.ParseExpr(e)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
				named[vs.Name] = append(named[vs.Name], where)
			}
			return nil
		})
	}

	exported := runAndScrape(t)
	for name, where := range named {
		base := regexp.MustCompile(`_(bucket|sum|count)$`).ReplaceAllString(name, "")
		if notOurs[name] || notOurs[base] {
			continue
		}
		_, ok := exported[name]
		if !ok && base != name {
			var f *dto.MetricFamily
			f, ok = exported[base]
			ok = ok && (f.GetType() == dto.MetricType_HISTOGRAM || f.GetType() == dto.MetricType_SUMMARY)
		}
		if !ok {
			t.Errorf("%s is named by %v but not exported", name, where)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// runAndScrape runs the pipeline briefly and returns its metric families.
func runAndScrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	cfg := config.Default()
	cfg.Models.Dir = stagetest.Env(t, "FACESTREAM_MODELS")
	cfg.ORT.Library = stagetest.Env(t, "FACESTREAM_ORT_LIB")
	cfg.Database.URL = config.Secret(pgtest.NewDSN(t))
	cfg.Data.Dir = t.TempDir()
	cfg.NATS.Listen = "127.0.0.1:0"
	cfg.Metrics.Addr = freeAddr(t)
	cfg.HTTP.Addr = freeAddr(t)
	ctx, stop := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- service.RunAll(ctx, cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), func(url string) { ready <- url })
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	var url string
	select {
	case url = <-ready:
	case err := <-done:
		done <- err
		t.Fatalf("run: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("pipeline not running after 2 minutes")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan struct{}, 4)
	// Every result (whatever its subject), told apart by CloudEvents type.
	cons, err := js.OrderedConsumer(ctx, fsnats.StreamResults, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) {
		switch m.Headers().Get("ce-type") {
		case events.TypeImageAnalyzed, events.TypeImageRejected:
			results <- struct{}{}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Stop()
	pub, err := events.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range [][]byte{stagetest.Image(t, "deepface", "img12.jpg"), []byte("not an image at all")} {
		e, err := events.NewImageSubmitted(events.Submission{ImageID: uuid.NewString(), Image: img})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := pub.Publish(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		select {
		case <-results:
		case <-time.After(2 * time.Minute):
			t.Fatal("no result within 2 minutes")
		}
	}
	analyzeWithKey(t, ctx, cfg, stagetest.Image(t, "deepface", "img13.jpg"))
	time.Sleep(500 * time.Millisecond) // the last acks and the recorder
	resp, err := http.Get("http://" + cfg.Metrics.Addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// analyzeWithKey sends img through the running pipeline's HTTP edge (POST
// /v1/analyze) with a new API key, so that the edge's metrics and the
// per-key usage counters have series.
func analyzeWithKey(t *testing.T, ctx context.Context, cfg config.Config, img []byte) {
	t.Helper()
	pool, err := pgxpool.New(ctx, cfg.Database.URL.Value())
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := auth.NewStore(pool).Create(ctx, auth.CreateOptions{Tenant: "rules", Name: "rules test", Scopes: []string{auth.ScopeWrite}, Actor: "test"})
	pool.Close()
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+cfg.HTTP.Addr+"/v1/analyze", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "image/jpeg")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/analyze: %d %s", resp.StatusCode, body)
	}
}
