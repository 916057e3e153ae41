package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"github.com/facestream/facestream/test/pipelinetest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"
	pgxvec "github.com/pgvector/pgvector-go/pgx"

	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/internal/store"
	"github.com/facestream/facestream/migrations"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// proc is one stage process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *bytes.Buffer
	done chan struct{}
}

// TestMultiProcess runs the real stage binaries as separate processes
// against a test NATS server and a fresh database, with two replicas of
// detect and of embed, and kills one detect replica with SIGKILL in the
// middle of the run, then starts it again: every image still ends with one
// stored outcome equal to the engine's, and nothing is stored or published
// twice.
func TestMultiProcess(t *testing.T) {
	ctx := context.Background()
	bin := pipelinetest.BuildStages(t)

	srv := natstest.Start(t)
	dsn := pgtest.NewDSN(t)
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error { return pgxvec.RegisterTypes(ctx, c) }
	db, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}

	logDir := t.TempDir()
	start := func(name string, n int) *proc {
		cmd := exec.Command(filepath.Join(bin, name), "--metrics-addr=", "--log-level=warn", "--concurrency=4")
		cmd.Env = append(os.Environ(), "FACESTREAM_NATS_URL="+srv.URL, "FACESTREAM_DATABASE_URL="+dsn)
		p := &proc{name: fmt.Sprintf("%s-%d", name, n), cmd: cmd, log: &bytes.Buffer{}, done: make(chan struct{})}
		cmd.Stdout, cmd.Stderr = p.log, p.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", p.name, err)
		}
		go func() { _ = cmd.Wait(); close(p.done) }()
		return p
	}
	var procs []*proc
	t.Cleanup(func() {
		for _, p := range procs {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, p := range procs {
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				_ = p.cmd.Process.Kill()
				<-p.done
				t.Errorf("%s did not stop on SIGTERM", p.name)
			}
			if t.Failed() {
				_ = os.WriteFile(filepath.Join(logDir, p.name+".log"), p.log.Bytes(), 0o600)
				t.Logf("%s log:\n%s", p.name, p.log.String())
			}
		}
	})
	for _, s := range []struct {
		name     string
		replicas int
	}{{"ingest", 1}, {"detect", 2}, {"embed", 2}, {"attrs", 1}, {"aggregate", 1}} {
		for i := range s.replicas {
			procs = append(procs, start(s.name, i))
		}
	}
	waitConsumers(t, ctx, srv.JS, 60*time.Second)

	var subs []submission
	all := pipelinetest.Images(t)
	for _, p := range all[:30] {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, submit(t, ctx, srv.JS, p, data, inlineMax))
	}

	// Mid-run: once a few results are stored, SIGKILL a detect replica and
	// start it again. What it held is redelivered after its ack wait.
	deadline := time.Now().Add(60 * time.Second)
	for len(pipelinetest.Outcomes(t, ctx, db)) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no results from the stage processes")
		}
		time.Sleep(50 * time.Millisecond)
	}
	victim := procs[1]
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-victim.done
	t.Logf("killed %s with %d of %d outcomes stored", victim.name, len(pipelinetest.Outcomes(t, ctx, db)), len(subs))
	procs = append(procs, start("detect", 2))

	got := waitOutcomes(t, ctx, db, subs, 150*time.Second)
	eng, _ := stagetest.Engine(t)
	want := engineResults(t, eng, subs, orientations(t, ctx, srv.JS))
	faces := 0
	for _, s := range subs {
		o := got[store.ImageUUID(s.id).String()]
		if o.Status == "analyzed" {
			faces += o.FaceCount
			if o.FaceCount != len(want[s.id]) {
				t.Errorf("%s: %d faces stored, engine finds %d", s.path, o.FaceCount, len(want[s.id]))
			}
		} else if o.Status != "rejected" || o.Reason == "" {
			t.Errorf("%s: outcome %+v", s.path, o)
		}
	}
	if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.images`); n != len(subs) {
		t.Errorf("%d image rows for %d images", n, len(subs))
	}
	if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.faces`); n != faces {
		t.Errorf("%d face rows, images say %d", n, faces)
	}
	if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.embeddings`); n != faces {
		t.Errorf("%d embeddings for %d faces", n, faces)
	}
	// One result event per image: redelivered work re-published the same
	// event ids, which the duplicate window dropped.
	results, err := srv.JS.Stream(ctx, fsnats.StreamResults)
	if err != nil {
		t.Fatal(err)
	}
	info, err := results.Info(ctx, jetstream.WithSubjectFilter("facestream.image.>"))
	if err != nil {
		t.Fatal(err)
	}
	var published uint64
	for _, n := range info.State.Subjects {
		published += n
	}
	if published != uint64(len(subs)) {
		t.Errorf("%d image results published for %d images: %v", published, len(subs), info.State.Subjects)
	}
	for _, p := range procs {
		if p == victim {
			continue
		}
		select {
		case <-p.done:
			t.Errorf("%s exited early:\n%s", p.name, p.log.String())
		default:
		}
	}
}

// waitConsumers waits until every stage consumer has a pull request
// waiting, that is until every process is running.
func waitConsumers(t *testing.T, ctx context.Context, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, c := range []struct{ stream, name string }{
		{fsnats.StreamWork, events.StageIngest}, {fsnats.StreamWork, events.StageDetect}, {fsnats.StreamWork, events.StageEmbed},
		{fsnats.StreamWork, events.StageAttrs}, {fsnats.StreamWork, events.StageAggregate}, {fsnats.StreamResults, "recorder"},
	} {
		for {
			cons, err := js.Consumer(ctx, c.stream, c.name)
			if err == nil {
				info, err := cons.Info(ctx)
				if err == nil && info.NumWaiting > 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer %s > %s has no puller after %v", c.stream, c.name, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
