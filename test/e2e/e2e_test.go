package e2e_test

import (
	"context"
	"encoding/json"
	"github.com/facestream/facestream/test/pipelinetest"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/internal/store"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// inlineMax is the inline limit of the tests' submissions and ingest
// (config's default, below the test server's 1 MB max_payload).
const inlineMax = 768 << 10

// TestPipeline runs every stage (ingest, detect, embed, attrs, aggregate,
// recorder) in this process, as `facestream run` does, on an in-process
// nats-server with the default 1 MB max_payload and a fresh database.
func TestPipeline(t *testing.T) {
	ctx := context.Background()
	eng, pack := stagetest.Engine(t)
	srv := natstest.Start(t)
	if err := service.Apply(ctx, srv.JS, config.Default(), slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	db := pgtest.NewMigrated(t)

	cfg := config.Default()
	cfg.Stage.Concurrency = 8
	cfg.Embed.BatchSize = 32
	cfg.Embed.BatchMaxWait = 20 * time.Millisecond
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	env := &service.Env{
		Config: cfg, Logger: logger, Registerer: reg, JS: srv.JS, Blobs: events.NewBlobStore(srv.JS),
		Models: &service.Models{Pack: pack, Engine: eng}, DB: db,
	}
	pipelinetest.RunStages(t, ctx, env)

	var subs []submission
	t.Run("every test image has one stored outcome equal to the engine's", func(t *testing.T) {
		start := time.Now()
		for _, p := range pipelinetest.Images(t) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			subs = append(subs, submit(t, ctx, srv.JS, p, data, inlineMax))
		}
		got := waitOutcomes(t, ctx, db, subs, 150*time.Second)
		t.Logf("%d images through the pipeline in %v", len(subs), time.Since(start).Round(time.Millisecond))
		want := engineResults(t, eng, subs, orientations(t, ctx, srv.JS))
		analysed, faces := 0, 0
		for _, s := range subs {
			o := got[store.ImageUUID(s.id).String()]
			w := want[s.id]
			switch o.Status {
			case "analyzed":
				analysed++
				faces += o.FaceCount
				if o.FaceCount != len(w) {
					t.Errorf("%s: %d faces stored, engine finds %d", s.path, o.FaceCount, len(w))
					continue
				}
				embs := storedEmbeddings(t, ctx, db, s.id)
				if len(embs) != len(w) {
					t.Errorf("%s: %d embeddings stored for %d faces", s.path, len(embs), len(w))
					continue
				}
				for i := range w {
					if c := face.Cosine(embs[i], w[i].Embedding); c < 0.9999 {
						// Say where the two disagree: detection (box, landmarks) or the embedding alone.
						var box [4]float32
						var lm []float32
						var score float32
						err := db.QueryRow(ctx, `SELECT box_x1, box_y1, box_x2, box_y2, landmarks, det_score FROM facestream.faces
							WHERE image_id = $1 AND face_index = $2`, store.ImageUUID(s.id), i).Scan(&box[0], &box[1], &box[2], &box[3], &lm, &score)
						t.Errorf("%s face %d: stored embedding has cosine %v to the engine's; stored box %v landmarks %v score %v (err %v), engine box %v landmarks %v score %v",
							s.path, i, c, box, lm, score, err, w[i].Box, w[i].Landmarks, w[i].Score)
					}
				}
			case "rejected":
				if o.Reason == "" {
					t.Errorf("%s: rejected without a reason", s.path)
				}
				if o.Reason == string(events.RejectNoFace) && len(w) != 0 {
					t.Errorf("%s: rejected no_face, engine finds %d faces", s.path, len(w))
				}
				if len(w) > 0 && o.Reason != string(events.RejectNoFace) {
					t.Logf("%s: rejected (%s); the engine finds %d faces", s.path, o.Reason, len(w))
				}
			default:
				t.Errorf("%s: status %q", s.path, o.Status)
			}
		}
		if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.images`); n != len(subs) {
			t.Errorf("%d image rows for %d images", n, len(subs))
		}
		if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.faces`); n != faces {
			t.Errorf("%d face rows, images say %d", n, faces)
		}
		t.Logf("%d analysed with %d faces, %d rejected", analysed, faces, len(subs)-analysed)
	})

	t.Run("embed batches across messages", func(t *testing.T) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "facestream_embed_batch_size" {
				h := mf.GetMetric()[0].GetHistogram()
				t.Logf("%v crops in %d recognizer runs", h.GetSampleSum(), h.GetSampleCount())
				if h.GetSampleSum() <= float64(h.GetSampleCount()) {
					t.Fatalf("no batch above one crop: %v crops in %d runs", h.GetSampleSum(), h.GetSampleCount())
				}
				return
			}
		}
		t.Fatal("no facestream_embed_batch_size metric")
	})

	t.Run("duplicates create no rows", func(t *testing.T) {
		if len(subs) == 0 {
			t.Fatal("no submissions")
		}
		images := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.images`)
		faces := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.faces`)
		embs := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.embeddings`)
		// The same events again: JetStream's duplicate window drops them.
		for _, s := range subs {
			publish(t, ctx, srv.JS, s.event)
		}
		// The same images under new event ids: analysed again, upserted.
		for _, s := range subs[:10] {
			e := events.Event{CloudEvent: s.event.CloudEvent.Clone()}
			e.CloudEvent.SetID(uuid.NewString())
			publish(t, ctx, srv.JS, e)
		}
		waitDrained(t, ctx, srv.JS, 60*time.Second)
		if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.images`); n != images {
			t.Errorf("%d image rows after duplicates, %d before", n, images)
		}
		if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.faces`); n != faces {
			t.Errorf("%d face rows after duplicates, %d before", n, faces)
		}
		if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.embeddings`); n != embs {
			t.Errorf("%d embedding rows after duplicates, %d before", n, embs)
		}
	})

	t.Run("poison is dead-lettered and does not block", func(t *testing.T) {
		poison := nats.NewMsg(events.SubjectImageAccepted)
		id := uuid.NewString()
		for k, v := range map[string]string{
			"ce-specversion": "1.0", "ce-id": id, "ce-source": "/e2e", "ce-type": events.TypeImageAccepted,
			"ce-subject": uuid.NewString(), "content-type": "application/json", "Nats-Msg-Id": id,
		} {
			poison.Header.Set(k, v)
		}
		poison.Data = []byte(`{"image": "this is not an object"`)
		if _, err := srv.JS.PublishMsg(ctx, poison); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(subs[0].path)
		if err != nil {
			t.Fatal(err)
		}
		behind := []submission{submit(t, ctx, srv.JS, subs[0].path, data, inlineMax)}
		waitOutcomes(t, ctx, db, behind, 60*time.Second)

		dl := deadLetter(t, ctx, srv.JS, events.DLQSubject(events.StageDetect), 30*time.Second)
		if dl.Stage != events.StageDetect || dl.Reason != events.DeadLetterPermanent || !strings.Contains(dl.Error, "decode") || dl.Original.Subject != events.SubjectImageAccepted {
			t.Fatalf("dead letter %+v", dl)
		}
	})

	t.Run("a photo of 200 faces flows end to end", func(t *testing.T) {
		data := mosaic(t, eng, 200)
		s := submit(t, ctx, srv.JS, "mosaic-200.jpg", data, inlineMax)
		got := waitOutcomes(t, ctx, db, []submission{s}, 90*time.Second)
		o := got[store.ImageUUID(s.id).String()]
		if o.Status != "analyzed" || o.FaceCount != 200 {
			t.Fatalf("mosaic (%d bytes): %+v, want analysed with 200 faces", len(data), o)
		}
		if n := len(storedEmbeddings(t, ctx, db, s.id)); n != 200 {
			t.Fatalf("mosaic: %d embeddings stored, want 200", n)
		}
		if n := pipelinetest.Count(t, ctx, db, `SELECT count(*) FROM facestream.faces WHERE image_id = $1`, store.ImageUUID(s.id)); n != 200 {
			t.Fatalf("mosaic: %d face rows, want 200", n)
		}
	})
}

// waitDrained waits until the work stream is empty (every stage acked).
func waitDrained(t *testing.T, ctx context.Context, js jetstream.JetStream, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s, err := js.Stream(ctx, fsnats.StreamWork)
		if err != nil {
			t.Fatal(err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("work stream still holds %d messages after %v", info.State.Msgs, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// deadLetter waits for the first dead letter on subject.
func deadLetter(t *testing.T, ctx context.Context, js jetstream.JetStream, subject string, timeout time.Duration) events.DeadLetter {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, fsnats.StreamDLQ, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(timeout))
	if err != nil {
		t.Fatalf("no dead letter on %s: %v", subject, err)
	}
	e, err := events.Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
	if err != nil {
		t.Fatal(err)
	}
	var dl events.DeadLetter
	if err := json.Unmarshal(e.CloudEvent.Data(), &dl); err != nil {
		t.Fatal(err)
	}
	return dl
}
