package e2e_test

import (
	"context"
	"github.com/facestream/facestream/test/pipelinetest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	pgvec "github.com/pgvector/pgvector-go"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/internal/store"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// submission is one image submitted to the pipeline.
type submission struct {
	id    string
	path  string
	data  []byte
	event events.Event // as published, with its id fixed
}

// submit publishes data as image.submitted (by object-store reference
// above inlineMax) under a fresh image id and event id.
func submit(t *testing.T, ctx context.Context, js jetstream.JetStream, path string, data []byte, inlineMax int) submission {
	t.Helper()
	id := uuid.NewString()
	s := events.Submission{ImageID: id, Image: data}
	if len(data) > inlineMax {
		ref, err := events.NewBlobStore(js).Put(ctx, "facestream-images", "submitted/"+id, "", data)
		if err != nil {
			t.Fatal(err)
		}
		s.Image, s.Ref = nil, &ref
	}
	e, err := events.NewImageSubmitted(s)
	if err != nil {
		t.Fatal(err)
	}
	e.CloudEvent.SetID(uuid.NewString())
	e.CloudEvent.SetSource("/e2e")
	e.CloudEvent.SetTime(time.Now().UTC())
	publish(t, ctx, js, e)
	return submission{id: id, path: path, data: data, event: e}
}

func publish(t *testing.T, ctx context.Context, js jetstream.JetStream, e events.Event) {
	t.Helper()
	pub, err := events.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish(ctx, e); err != nil {
		t.Fatal(err)
	}
}

// waitOutcomes polls until every submission has a stored outcome.
func waitOutcomes(t *testing.T, ctx context.Context, db *pgxpool.Pool, subs []submission, timeout time.Duration) map[string]pipelinetest.Outcome {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := pipelinetest.Outcomes(t, ctx, db)
		missing := 0
		for _, s := range subs {
			if _, ok := got[store.ImageUUID(s.id).String()]; !ok {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d images have no stored outcome after %v", missing, len(subs), timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// storedEmbeddings returns an image's stored embeddings by face index.
func storedEmbeddings(t *testing.T, ctx context.Context, db *pgxpool.Pool, imageID string) [][]float32 {
	t.Helper()
	rows, err := db.Query(ctx, `SELECT f.face_index, e.embedding FROM facestream.faces f
		JOIN facestream.embeddings e ON e.face_id = f.id WHERE f.image_id = $1 ORDER BY f.face_index`, store.ImageUUID(imageID))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]float32
	for rows.Next() {
		var idx int
		var v pgvec.Vector
		if err := rows.Scan(&idx, &v); err != nil {
			t.Fatal(err)
		}
		if idx != len(out) {
			t.Fatalf("image %s: face index %d stored after %d faces", imageID, idx, len(out))
		}
		out = append(out, v.Slice())
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// orientations reads every image.analyzed of the results stream and returns
// the EXIF orientation ingest applied, by image id.
func orientations(t *testing.T, ctx context.Context, js jetstream.JetStream) map[string]int {
	t.Helper()
	cons, err := js.OrderedConsumer(ctx, fsnats.StreamResults, jetstream.OrderedConsumerConfig{FilterSubjects: []string{events.SubjectImageAnalyzed + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for {
		batch, err := cons.FetchNoWait(500)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			e, err := events.Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
			if err != nil {
				t.Fatal(err)
			}
			var a events.ImageAnalyzed
			if err := e.Decode(&a); err != nil {
				t.Fatal(err)
			}
			out[a.Image.ImageID] = a.Image.Orientation
		}
		if n == 0 {
			return out
		}
	}
}

// engineResults analyses each image directly with the face engine, as the
// pipeline does: decoded once, upright per the EXIF orientation.
func engineResults(t *testing.T, eng *face.Engine, subs []submission, orient map[string]int) map[string][]face.FaceResult {
	t.Helper()
	out := make(map[string][]face.FaceResult, len(subs))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for _, s := range subs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			// Decoded as the detect stage decodes it (reduced when large).
			dec := face.DecodeOptions{MinSide: config.Default().Detection.DecodeMinSide, Orientation: orient[s.id]}
			if _, err := face.DecodePicture(s.data, dec); err != nil {
				mu.Lock()
				out[s.id] = nil
				mu.Unlock()
				return
			}
			res, err := eng.AnalyzeEncoded(s.data, dec, face.AnalyzeOptions{Embedding: true, NoAttributes: true})
			if err != nil {
				t.Errorf("%s: engine: %v", s.path, err)
				return
			}
			mu.Lock()
			out[s.id] = res
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

// mosaic builds a photo of n real faces: the engine's aligned crops of the
// faces in the deepface photos, repeated as needed, on a grid with a grey
// gap between tiles.
func mosaic(t *testing.T, eng *face.Engine, n int) []byte {
	t.Helper()
	root := stagetest.Env(t, "FACESTREAM_TESTDATA")
	paths, err := filepath.Glob(filepath.Join(root, "deepface", "img*.jpg"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no deepface images: %v", err)
	}
	var tiles []*imaging.Image
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := imaging.Decode(data, imaging.DefaultLimits)
		if err != nil {
			continue
		}
		faces, err := eng.Detector().Detect(img)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range faces {
			if f.Score < 0.7 {
				continue
			}
			c, _, err := face.AlignedCrop(img, f.Landmarks, 112)
			if err != nil {
				t.Fatal(err)
			}
			tiles = append(tiles, c)
		}
		if len(tiles) >= 40 {
			break
		}
	}
	const tile, gap = 112, 24
	cols := 16
	rows := (n + cols - 1) / cols
	w, h := cols*(tile+gap)+gap, rows*(tile+gap)+gap
	pix := make([]byte, 3*w*h)
	for i := range pix {
		pix[i] = 128
	}
	for i := range n {
		src := tiles[i%len(tiles)].RGB()
		x0, y0 := gap+(i%cols)*(tile+gap), gap+(i/cols)*(tile+gap)
		for y := range tile {
			copy(pix[3*((y0+y)*w+x0):3*((y0+y)*w+x0+tile)], src[3*y*tile:3*(y+1)*tile])
		}
	}
	img, err := imaging.FromRGB(w, h, pix)
	if err != nil {
		t.Fatal(err)
	}
	data, err := img.EncodeJPEG(92)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
