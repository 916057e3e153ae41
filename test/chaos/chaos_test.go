package chaos_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/facestream/facestream/test/pipelinetest"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/store"
	"github.com/facestream/facestream/migrations"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// params shape a run; the environment overrides the bounded defaults that
// `make test` runs (make chaos sets the full run).
type params struct {
	Images     int           `json:"images"`
	KillsEach  int           `json:"kills_per_stage"`
	PGStop     time.Duration `json:"pg_stop_ns"`
	NATSDown   time.Duration `json:"nats_down_ns"`
	Seed       uint64        `json:"seed"`
	InFlight   int           `json:"max_in_flight"`
	Deadline   time.Duration `json:"deadline_ns"`
	ReportDir  string        `json:"-"`
	BadEvery   int           `json:"bad_input_every"`
	CacheEvery int           `json:"cache_allowed_every"`
}

func loadParams(t *testing.T) params {
	p := params{Images: 60, KillsEach: 1, PGStop: 10 * time.Second, NATSDown: 2 * time.Second,
		Seed: uint64(time.Now().UnixNano()), InFlight: 24, Deadline: 150 * time.Second, BadEvery: 10, CacheEvery: 4}
	env := func(name string, f func(string) error) {
		if v := os.Getenv(name); v != "" {
			if err := f(v); err != nil {
				t.Fatalf("%s=%q: %v", name, v, err)
			}
		}
	}
	env("FACESTREAM_CHAOS_IMAGES", func(v string) (err error) { p.Images, err = strconv.Atoi(v); return })
	env("FACESTREAM_CHAOS_KILLS", func(v string) (err error) { p.KillsEach, err = strconv.Atoi(v); return })
	env("FACESTREAM_CHAOS_PG_STOP", func(v string) (err error) { p.PGStop, err = time.ParseDuration(v); return })
	env("FACESTREAM_CHAOS_SEED", func(v string) (err error) { p.Seed, err = strconv.ParseUint(v, 10, 64); return })
	env("FACESTREAM_CHAOS_REPORT", func(v string) error { p.ReportDir = v; return nil })
	if p.Images > 100 {
		p.Deadline = time.Duration(p.Images)*2*time.Second + 10*time.Minute
	}
	return p
}

// fault is one injected fault, as reported.
type fault struct {
	Kind   string  `json:"kind"` // kill, nats_restart, pg_stop
	Target string  `json:"target"`
	At     float64 `json:"at_s"`
	For    float64 `json:"for_s,omitempty"`
	Done   int     `json:"outcomes_before"`
}

// report is the reliability report of one run.
type report struct {
	Params       params         `json:"params"`
	Faults       []fault        `json:"faults"`
	Submitted    int            `json:"submitted"`
	Analyzed     int            `json:"analyzed"`
	Rejected     int            `json:"rejected"`
	RejectedBy   map[string]int `json:"rejected_by_reason"`
	DeadLettered int            `json:"dead_lettered"`
	Duplicated   int            `json:"duplicated"`
	Lost         int            `json:"lost"`
	Faces        int            `json:"faces"`
	Seconds      float64        `json:"seconds"`
	Restarts     map[string]int `json:"process_starts"`
	ObjectsLeft  int            `json:"objects_left"`
}

// proc is one running stage process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
}

var stageNames = []string{"ingest", "detect", "embed", "attrs", "aggregate"}

// TestChaos is the fault-injection run described in the package comment.
func TestChaos(t *testing.T) {
	p := loadParams(t)
	rng := rand.New(rand.NewPCG(p.Seed, p.Seed^0x5eed))
	t.Logf("chaos: %d images, %d kill(s) per stage, PostgreSQL down %v, seed %d", p.Images, p.KillsEach, p.PGStop, p.Seed)
	ctx := context.Background()
	began := time.Now()

	bin := pipelinetest.BuildStages(t)

	srv := natstest.Start(t)
	pg := startCluster(t)
	db := openDB(t, ctx, pg)

	// Claim checks and crop sets are sealed at rest under a test key, with a
	// previous key configured as after a rotation.
	blobKey := func(id string) string {
		k := make([]byte, 32)
		for i := range k {
			k[i] = byte(rng.Uint32())
		}
		return id + ":" + fmt.Sprintf("%x", k)
	}
	keys := []string{"FACESTREAM_BLOB_KEY=" + blobKey("chaos-2"), "FACESTREAM_BLOB_PREVIOUS_KEYS=" + blobKey("chaos-1")}

	logDir := t.TempDir()
	var (
		mu     sync.Mutex
		procs  = map[string]*proc{}
		starts = map[string]int{}
		killed = map[*proc]bool{}
	)
	start := func(name string) {
		mu.Lock()
		defer mu.Unlock()
		starts[name]++
		f, err := os.Create(filepath.Join(logDir, fmt.Sprintf("%s-%d.log", name, starts[name])))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(filepath.Join(bin, name), "--metrics-addr=", "--log-level=warn", "--concurrency=4")
		cmd.Env = append(os.Environ(), "FACESTREAM_NATS_URL="+srv.URL, "FACESTREAM_DATABASE_URL="+pg.DSN("facestream"))
		cmd.Env = append(cmd.Env, keys...)
		cmd.Stdout, cmd.Stderr = f, f
		pr := &proc{name: name, cmd: cmd, log: f, done: make(chan struct{})}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		go func() { _ = cmd.Wait(); close(pr.done) }()
		procs[name] = pr
	}
	var all []*proc
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		for _, pr := range procs {
			_ = pr.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, pr := range procs {
			select {
			case <-pr.done:
			case <-time.After(30 * time.Second):
				_ = pr.cmd.Process.Kill()
				<-pr.done
			}
		}
		for _, pr := range all {
			_ = pr.log.Close()
			if t.Failed() {
				if b, err := os.ReadFile(pr.log.Name()); err == nil && len(b) > 0 {
					t.Logf("%s:\n%s", filepath.Base(pr.log.Name()), tail(b, 4000))
				}
			}
		}
	})
	for _, n := range stageNames {
		start(n)
	}
	mu.Lock()
	for _, pr := range procs {
		all = append(all, pr)
	}
	mu.Unlock()
	waitConsumers(t, ctx, srv.JS, 90*time.Second)
	t.Logf("chaos: binaries built, cluster and stages up after %.1fs", time.Since(began).Seconds())
	began = time.Now()

	// Progress is read from the database; while it is down the last value
	// stands.
	var done atomic.Int64
	poll := func() int {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		var n int
		if err := db.QueryRow(qctx, `SELECT count(*) FROM facestream.images WHERE status <> 'accepted'`).Scan(&n); err == nil {
			done.Store(int64(n))
		}
		return int(done.Load())
	}

	// The submitter keeps at most InFlight images in the pipeline, so that
	// every stage has work throughout the run, and rides out NATS restarts.
	images := pipelinetest.Images(t)
	subs := make([]submission, p.Images)
	for i := range subs {
		subs[i] = submission{id: uuid.NewString(), eventID: uuid.NewString()}
		switch {
		case p.BadEvery > 0 && i%p.BadEvery == p.BadEvery-1:
			subs[i].data, subs[i].bad = badInput(t, images, i), true
		default:
			path := images[(i*7)%len(images)]
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			subs[i].data = data
			subs[i].skipCache = p.CacheEvery <= 0 || i%p.CacheEvery != 0
		}
	}
	submitted := make(chan struct{})
	var nsub atomic.Int64
	go func() {
		defer close(submitted)
		for i := range subs {
			for int(nsub.Load())-poll() >= p.InFlight && time.Since(began) < p.Deadline {
				time.Sleep(100 * time.Millisecond)
			}
			for attempt := 1; ; attempt++ {
				err := submit(ctx, srv.JS, &subs[i])
				if err == nil {
					break
				}
				if time.Since(began) > p.Deadline {
					t.Errorf("submit %d: %v", i, err)
					return
				}
				time.Sleep(200 * time.Millisecond)
			}
			nsub.Add(1)
		}
	}()

	// The faults, in random order, at evenly spread points of progress.
	var plan []fault
	for range p.KillsEach {
		for _, n := range stageNames {
			plan = append(plan, fault{Kind: "kill", Target: n})
		}
	}
	plan = append(plan, fault{Kind: "nats_restart", Target: "nats-server"}, fault{Kind: "pg_stop", Target: "postgresql"})
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	var faults []fault
	for i, f := range plan {
		at := p.Images * (i + 1) / (len(plan) + 2)
		for poll() < at && time.Since(began) < p.Deadline {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(time.Second)))) // a random moment
		f.At, f.Done = time.Since(began).Seconds(), poll()
		switch f.Kind {
		case "kill":
			mu.Lock()
			victim := procs[f.Target]
			mu.Unlock()
			select {
			case <-victim.done:
				t.Errorf("%s had exited before it was killed", f.Target)
			default:
			}
			if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-victim.done
			killed[victim] = true
			start(f.Target)
			mu.Lock()
			all = append(all, procs[f.Target])
			mu.Unlock()
		case "nats_restart":
			srv.Stop()
			// A stage that (re)starts while the server is down must wait
			// for it, not exit.
			name := stageNames[rng.IntN(len(stageNames))]
			f.Target += " (+ kill -9 and restart of " + name + " while it is down)"
			mu.Lock()
			victim := procs[name]
			mu.Unlock()
			if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-victim.done
			start(name)
			mu.Lock()
			all = append(all, procs[name])
			mu.Unlock()
			time.Sleep(p.NATSDown)
			srv.StartAgain()
			f.For = p.NATSDown.Seconds()
		case "pg_stop":
			if err := pg.stop(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(p.PGStop)
			if err := pg.start(); err != nil {
				t.Fatal(err)
			}
			f.For = p.PGStop.Seconds()
		}
		t.Logf("fault %d/%d at %.1fs (%d outcomes): %s %s", i+1, len(plan), f.At, f.Done, f.Kind, f.Target)
		faults = append(faults, f)
	}
	<-submitted

	// Wait for every outcome in the database and every result event.
	for poll() < p.Images && time.Since(began) < p.Deadline {
		time.Sleep(250 * time.Millisecond)
	}
	var res map[string]resultCount
	for {
		res = results(t, ctx, srv.JS)
		if len(res) >= p.Images || time.Since(began) > p.Deadline {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // late duplicates, if any, would land now
	res = results(t, ctx, srv.JS)
	dead := deadLettered(t, ctx, srv.JS)
	got := pipelinetest.Outcomes(t, ctx, db)

	r := report{Params: p, Faults: faults, Submitted: len(subs), RejectedBy: map[string]int{}, Restarts: starts}
	for _, s := range subs {
		uid := store.ImageUUID(s.id).String()
		o, stored := got[uid]
		rc := res[s.id]
		switch {
		case rc.analyzed+rc.rejected > 1:
			r.Duplicated++
			t.Errorf("image %s: %d image.analyzed and %d image.rejected events", s.id, rc.analyzed, rc.rejected)
		case dead[s.id]:
			r.DeadLettered++
			t.Errorf("image %s was dead-lettered", s.id)
		case !stored || rc.analyzed+rc.rejected == 0:
			r.Lost++
			t.Errorf("image %s lost: stored %v (%+v), %d result events", s.id, stored, o, rc.analyzed+rc.rejected)
		case o.Status == "analyzed" && rc.analyzed == 1:
			r.Analyzed++
			r.Faces += o.FaceCount
			if s.bad {
				t.Errorf("bad input %s was analyzed", s.id)
			}
		case o.Status == "rejected" && o.Reason != "" && rc.rejected == 1:
			r.Rejected++
			r.RejectedBy[o.Reason]++
		default:
			r.Lost++
			t.Errorf("image %s: stored %+v but events %+v", s.id, o, rc)
		}
	}
	if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.images`); n != len(subs) {
		t.Errorf("%d image rows for %d images", n, len(subs))
		r.Duplicated += max(n-len(subs), 0)
	}
	if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.faces`); n != r.Faces {
		t.Errorf("%d face rows, images say %d", n, r.Faces)
	}
	if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.embeddings`); n != r.Faces {
		t.Errorf("%d embeddings for %d faces", n, r.Faces)
	}
	r.ObjectsLeft = sealedObjects(t, ctx, srv.JS)
	r.Seconds = time.Since(began).Seconds()
	mu.Lock()
	for _, pr := range procs {
		select {
		case <-pr.done:
			t.Errorf("%s exited by itself", pr.name)
		default:
		}
	}
	mu.Unlock()
	writeReport(t, p.ReportDir, r)
	if r.Duplicated != 0 || r.Lost != 0 || r.DeadLettered != 0 {
		t.Errorf("duplicated %d, lost %d, dead-lettered %d: want 0", r.Duplicated, r.Lost, r.DeadLettered)
	}
	if r.Analyzed == 0 || r.Analyzed+r.Rejected != len(subs) {
		t.Errorf("analyzed %d + rejected %d of %d", r.Analyzed, r.Rejected, len(subs))
	}
}

// submission is one image submitted to the pipeline.
type submission struct {
	id, eventID string
	data        []byte
	bad         bool
	skipCache   bool
}

// inlineMax keeps submitted events under the default 1 MB max_payload.
const inlineMax = 512 << 10

// submit publishes s as image.submitted (by object-store reference above
// inlineMax). A retry after an error re-publishes the same event id.
func submit(ctx context.Context, js jetstream.JetStream, s *submission) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sub := events.Submission{ImageID: s.id, Image: s.data, Options: events.RequestOptions{SkipCache: s.skipCache}}
	if len(s.data) > inlineMax {
		ref, err := events.NewBlobStore(js).Put(ctx, "facestream-images", "submitted/"+s.id, "", s.data)
		if err != nil {
			return err
		}
		sub.Image, sub.Ref = nil, &ref
	}
	e, err := events.NewImageSubmitted(sub)
	if err != nil {
		return err
	}
	e.CloudEvent.SetID(s.eventID)
	e.CloudEvent.SetSource("/chaos")
	e.CloudEvent.SetTime(time.Now().UTC())
	pub, err := events.NewPublisher(js)
	if err != nil {
		return err
	}
	_, err = pub.Publish(ctx, e)
	return err
}

// badInput is the i-th hostile input: garbage, a truncated photo, a text
// file, nothing at all, a header that claims a huge image.
func badInput(t *testing.T, images []string, i int) []byte {
	t.Helper()
	switch (i / 10) % 5 {
	case 0:
		b := make([]byte, 2048)
		for j := range b {
			b[j] = byte(j*31 + i)
		}
		return b
	case 1:
		data, err := os.ReadFile(images[i%len(images)])
		if err != nil {
			t.Fatal(err)
		}
		return data[:len(data)/3]
	case 2:
		return []byte("this is not an image\n")
	case 3:
		return nil
	default:
		// A PNG header declaring 100000×100000 pixels.
		return append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\x00\x00\x00"), make([]byte, 64)...)
	}
}

// resultCount counts the final result events of one image.
type resultCount struct{ analyzed, rejected int }

// results reads the whole results stream, whatever its subjects, and counts
// image.analyzed and image.rejected per image id.
func results(t *testing.T, ctx context.Context, js jetstream.JetStream) map[string]resultCount {
	t.Helper()
	out := map[string]resultCount{}
	for _, ev := range streamEvents(t, ctx, js, fsnats.StreamResults) {
		c := out[ev.ImageID()]
		switch ev.CloudEvent.Type() {
		case events.TypeImageAnalyzed:
			c.analyzed++
		case events.TypeImageRejected:
			c.rejected++
		default:
			continue
		}
		out[ev.ImageID()] = c
	}
	return out
}

// deadLettered returns the image ids in the dead-letter stream.
func deadLettered(t *testing.T, ctx context.Context, js jetstream.JetStream) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, ev := range streamEvents(t, ctx, js, fsnats.StreamDLQ) {
		out[ev.ImageID()] = true
	}
	return out
}

// streamEvents decodes every message of a stream.
func streamEvents(t *testing.T, ctx context.Context, js jetstream.JetStream, name string) []events.Event {
	t.Helper()
	s, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []events.Event
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("%s seq %d: %v", name, seq, err)
		}
		ev, err := events.Decode(natsMsg(m))
		if err != nil {
			t.Errorf("%s seq %d does not decode: %v", name, seq, err)
			continue
		}
		out = append(out, ev)
	}
	return out
}

// sealedObjects returns how many objects are left in the images bucket,
// failing the test for any that facestream wrote in the clear (the test's
// own uploads, under submitted/, are plaintext as an external producer's).
func sealedObjects(t *testing.T, ctx context.Context, js jetstream.JetStream) int {
	t.Helper()
	obs, err := js.ObjectStore(ctx, "facestream-images")
	if err != nil {
		t.Fatal(err)
	}
	infos, err := obs.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range infos {
		if !strings.HasPrefix(in.Name, "submitted/") && in.Headers.Get(events.HeaderBlobKeyID) == "" {
			t.Errorf("object %s is stored in the clear", in.Name)
		}
	}
	return len(infos)
}

func natsMsg(m *jetstream.RawStreamMsg) *nats.Msg {
	return &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
}

// writeReport writes reliability.json and reliability.md into dir (a temp
// dir when empty) and logs the Markdown.
func writeReport(t *testing.T, dir string, r report) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	var md bytes.Buffer
	fmt.Fprintf(&md, "# facestream reliability report\n\n")
	fmt.Fprintf(&md, "Fault-injection run (`%s`, seed %d): the real stage binaries as processes, a test-owned NATS server (file store) and PostgreSQL 15 cluster.\n\n", t.Name(), r.Params.Seed)
	fmt.Fprintf(&md, "| figure | count |\n|---|---|\n")
	kinds := map[string]int{}
	for _, f := range r.Faults {
		kinds[f.Kind]++
	}
	fmt.Fprintf(&md, "| faults injected | %d (kill -9: %d, NATS restarts: %d, PostgreSQL stops of %v: %d) |\n",
		len(r.Faults), kinds["kill"], kinds["nats_restart"], r.Params.PGStop, kinds["pg_stop"])
	for _, row := range []struct {
		k string
		v int
	}{{"images submitted", r.Submitted}, {"analyzed", r.Analyzed}, {"rejected (with a reason)", r.Rejected},
		{"dead-lettered", r.DeadLettered}, {"duplicated", r.Duplicated}, {"lost", r.Lost}, {"faces stored", r.Faces},
		{"objects left in the bucket (TTL removes them)", r.ObjectsLeft}} {
		fmt.Fprintf(&md, "| %s | %d |\n", row.k, row.v)
	}
	fmt.Fprintf(&md, "| duration | %.0f s |\n\nRejections by reason: ", r.Seconds)
	var reasons []string
	for k, v := range r.RejectedBy {
		reasons = append(reasons, fmt.Sprintf("%s %d", k, v))
	}
	slices.Sort(reasons)
	fmt.Fprintf(&md, "%s.\n\n## Faults\n\n| # | at | outcomes before | fault | target | for |\n|---|---|---|---|---|---|\n", strings.Join(reasons, ", "))
	for i, f := range r.Faults {
		dur := ""
		if f.For > 0 {
			dur = fmt.Sprintf("%.0f s", f.For)
		}
		fmt.Fprintf(&md, "| %d | %.1f s | %d | %s | %s | %s |\n", i+1, f.At, f.Done, f.Kind, f.Target, dur)
	}
	if err := os.WriteFile(filepath.Join(dir, "reliability.json"), append(js, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "reliability.md"), md.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("reliability report (%s):\n%s", dir, md.String())
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func openDB(t *testing.T, ctx context.Context, pg *pgCluster) *pgxpool.Pool {
	t.Helper()
	admin, err := pgxpool.New(ctx, pg.DSN("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE facestream`); err != nil {
		t.Fatal(err)
	}
	admin.Close()
	db, err := pgxpool.New(ctx, pg.DSN("facestream"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	if _, err := migrations.Up(ctx, db); err != nil {
		t.Fatal(err)
	}
	return db
}

// waitConsumers waits until every stage consumer has a waiting pull.
func waitConsumers(t *testing.T, ctx context.Context, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for _, c := range []struct{ stream, name string }{
		{fsnats.StreamWork, "ingest"}, {fsnats.StreamWork, "detect"}, {fsnats.StreamWork, "embed"},
		{fsnats.StreamWork, "attrs"}, {fsnats.StreamWork, "aggregate"}, {fsnats.StreamResults, "recorder"},
	} {
		for {
			cons, err := js.Consumer(ctx, c.stream, c.name)
			if err == nil {
				if info, err := cons.Info(ctx); err == nil && info.NumWaiting > 0 {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("consumer %s > %s has no waiting pull after %v", c.stream, c.name, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
