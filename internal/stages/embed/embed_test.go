package embed_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/stages/crops"
	"github.com/facestream/facestream/internal/stages/detect"
	"github.com/facestream/facestream/internal/stages/embed"
	"github.com/facestream/facestream/internal/stages/stagetest"
	"github.com/facestream/facestream/pkg/events"
)

// batchSizes returns the count and sum of the batch-size histogram.
func batchSizes(t *testing.T, reg *prometheus.Registry) (count uint64, sum float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "facestream_embed_batch_size" {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatal("no facestream_embed_batch_size metric")
	return 0, 0
}

// Concurrent callers share batches, never above the size, and each gets
// its own results back in order.
func TestBatcherBatchesAcrossCallers(t *testing.T) {
	reg := prometheus.NewRegistry()
	var mu sync.Mutex
	largest := 0
	fn := func(crops [][]byte) ([][]float32, error) {
		mu.Lock()
		largest = max(largest, len(crops))
		mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		out := make([][]float32, len(crops))
		for i, c := range crops {
			out[i] = []float32{float32(c[0]), float32(c[1])}
		}
		return out, nil
	}
	b, err := embed.NewBatcher(fn, embed.BatcherConfig{Size: 8, MaxWait: 20 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var wg sync.WaitGroup
	for caller := range 24 {
		wg.Go(func() {
			in := [][]byte{{byte(caller), 0}, {byte(caller), 1}, {byte(caller), 2}}
			got, err := b.Embed(context.Background(), in)
			if err != nil {
				t.Error(err)
				return
			}
			for i, v := range got {
				if v[0] != float32(caller) || v[1] != float32(i) {
					t.Errorf("caller %d crop %d: got %v", caller, i, v)
				}
			}
		})
	}
	wg.Wait()
	count, sum := batchSizes(t, reg)
	if sum != 72 || count >= 72 || largest > 8 {
		t.Fatalf("%v crops in %d batches, largest %d: want 72 crops in batches of 2..8", sum, count, largest)
	}
}

// A cancelled caller returns at once; a closed batcher refuses work.
func TestBatcherCancelAndClose(t *testing.T) {
	block := make(chan struct{})
	b, err := embed.NewBatcher(func(c [][]byte) ([][]float32, error) {
		<-block
		return make([][]float32, len(c)), nil
	}, embed.BatcherConfig{Size: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := b.Embed(ctx, [][]byte{{1}}); err == nil {
		t.Fatal("embed with a cancelled context succeeded")
	}
	close(block)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Embed(context.Background(), [][]byte{{1}}); err == nil {
		t.Fatal("embed after close succeeded")
	}
}

// Under concurrent load the embed stage runs batches larger than one, and
// its vectors equal the recognizer's one crop at a time (cosine ≥ 0.9999).
func TestEmbedBatchedEqualsUnbatched(t *testing.T) {
	eng, pack := stagetest.Engine(t)
	_, blobs := stagetest.JetStream(t)
	reg := prometheus.NewRegistry()
	rec := eng.Recognizer()
	b, err := embed.NewBatcher(rec.Embed, embed.BatcherConfig{Size: 16, MaxWait: 30 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h, err := embed.New(embed.Config{Recognizer: rec, Batcher: b, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	det, err := detect.New(detect.Config{Pack: pack, Detector: eng.Detector(), Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	var inputs []*events.FacesDetected
	for _, name := range []string{"couple.jpg", "img1.jpg", "img2.jpg", "img3.jpg", "img4.jpg", "img5.jpg", "img6.jpg", "img7.jpg"} {
		id := "img-" + name
		data := stagetest.Image(t, "deepface", name)
		outs, err := det.Handle(context.Background(), stagetest.Delivery(t, id, &events.ImageAccepted{
			Image: events.ImageInfo{ImageID: id}, Data: events.Blob{Data: data}}))
		var fd events.FacesDetected
		stagetest.Output(t, outs, err, &fd)
		inputs = append(inputs, &fd)
	}
	var wg sync.WaitGroup
	for round := range 3 {
		for i, in := range inputs {
			wg.Go(func() {
				outs, err := h.Handle(context.Background(), stagetest.Delivery(t, in.Image.ImageID, in))
				var got events.FacesEmbedded
				stagetest.Output(t, outs, err, &got)
				set, _, err := crops.Load(context.Background(), blobs, in.Crops, events.CropAligned112)
				if err != nil {
					t.Error(err)
					return
				}
				for _, f := range got.Faces {
					pix, _ := set.Crop(f.Index)
					want, err := rec.EmbedOne(pix)
					if err != nil {
						t.Error(err)
						return
					}
					if f.Embedding == nil || f.Embedding.Model != "mobilefacenet" || f.Embedding.Dim != 128 {
						t.Errorf("round %d image %d face %d: embedding %+v", round, i, f.Index, f.Embedding)
						return
					}
					if c := face.Cosine(want, f.Embedding.Vector); c < 0.9999 {
						t.Errorf("round %d image %d face %d: cosine %v to the unbatched embedding", round, i, f.Index, c)
					}
				}
			})
		}
	}
	wg.Wait()
	count, sum := batchSizes(t, reg)
	t.Logf("%v crops in %d recognizer runs", sum, count)
	if float64(count) >= sum {
		t.Fatalf("%v crops in %d runs: no batch held more than one crop", sum, count)
	}
}

func ExampleBatcher() {
	b, _ := embed.NewBatcher(func(crops [][]byte) ([][]float32, error) {
		out := make([][]float32, len(crops))
		for i := range crops {
			out[i] = []float32{float32(len(crops[i]))}
		}
		return out, nil
	}, embed.BatcherConfig{Size: 16, MaxWait: 5 * time.Millisecond})
	defer b.Close()
	v, _ := b.Embed(context.Background(), [][]byte{make([]byte, 3)})
	fmt.Println(v)
	// Output: [[3]]
}
