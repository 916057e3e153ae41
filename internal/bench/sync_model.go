package bench

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/internal/stages/ingest"
)

// ModelTime is how the sync-latency benchmark prices an image's model work
// in bare ONNX Runtime: per-run times measured by the ceiling replay
// (replay in ceiling.go) with one worker — a single request, nothing else
// running in this process — and the service's session settings (intra-op
// threads, spinning), once before the load and once after it; PerRunMS is
// their mean.
//
// An image's model time is then
//
//	passes × detector + second × detector@<second scale> + faces × (recognizer + genderage + emotion)
//
// where passes is the detector's runs at its input size (1, or 4 when its
// rotation search ran: detect.rotations, when no upright face convinced it)
// and second its runs at detect.second_scale (0 or 1 per pass: the engine
// runs the second scale only when the main one found no convincing face),
// both counted by running the service's own face engine detector on the
// image (detectorPasses), and faces is the number of faces the pipeline
// answered. That is the model work the pipeline itself does for the image
// under the running settings (Settings' detect.*). The strict reading — one
// detector run at the input size per image, the raw model ceiling's
// definition — is reported beside it (strictMS).
type ModelTime struct {
	PerRunMS       map[string]float64 `json:"per_run_ms"`
	PerRunBeforeMS map[string]float64 `json:"per_run_before_ms"`
	PerRunAfterMS  map[string]float64 `json:"per_run_after_ms"`
	// SecondScale is detect.second_scale (0: none).
	SecondScale int `json:"second_scale"`
	// DetectorRuns counts the images by their detector runs, e.g. "1×640"
	// or "1×640 + 1×320".
	DetectorRuns map[string]int `json:"detector_runs"`
}

// imageMS is the model time of an image with the given detector runs
// (passes at the input size, second at the second scale) and faces.
func (m ModelTime) imageMS(passes, second, faces int) float64 {
	return float64(passes)*m.PerRunMS[string(modelpack.Detector)] + float64(second)*m.PerRunMS[string(secondScale)] + float64(faces)*m.perFaceMS()
}

// strictMS is the ceiling's reading: one detector run at the input size.
func (m ModelTime) strictMS(faces int) float64 {
	return m.PerRunMS[string(modelpack.Detector)] + float64(faces)*m.perFaceMS()
}

func (m ModelTime) perFaceMS() float64 {
	s := 0.0
	for k, v := range m.PerRunMS {
		if k != string(modelpack.Detector) && k != string(secondScale) {
			s += v
		}
	}
	return s
}

// imageInfo is what the bench learns about one image before the load.
type imageInfo struct {
	passes, second, faces int              // detector runs at the input size and at the second scale; faces found
	decodeMS              float64          // imaging.Decode + EXIF orientation, alone in this process
	pixels                int              // width × height
	crops                 []*imaging.Image // the faces found, aligned 112×112: the per-face models replay on them
}

// detectorPasses runs the face engine's detector, built by
// service.OpenModels with svc's settings exactly as the detect stage's, on
// every image (decoded and EXIF-oriented as the detect stage does) and
// counts its runs; it also times each decode. It returns the models (the
// caller closes them).
//
// The runs' sizes are not observable, so they are told apart by the
// engine's policy: each pass (one, or four with the rotation search) runs
// the input size, then the second scale when that found nothing
// convincing. runs ≤ 2 is one pass; more (rotations only) is four. A count
// that fits no such split fails loudly: the engine changed, and so must
// this.
func detectorPasses(svc config.Config, images [][]byte, logger *slog.Logger) (*service.Models, []imageInfo, error) {
	reg := prometheus.NewRegistry()
	models, err := service.OpenModels(svc, logger, reg)
	if err != nil {
		return nil, nil, fmt.Errorf("sync: %w", err)
	}
	det := models.Engine.Detector()
	infos := make([]imageInfo, len(images))
	for i, data := range images {
		hdr, err := ingest.Validate(data, ingest.DefaultLimits)
		if err != nil {
			return models, nil, fmt.Errorf("sync: image %d: %w", i, err)
		}
		t0 := time.Now()
		// Decoded as the detect stage decodes it: the detector runs on the
		// reduced picture there, and its second scale depends on it.
		pic, err := face.DecodePicture(data, face.DecodeOptions{MinSide: svc.Detection.DecodeMinSide, Orientation: hdr.Orientation})
		if err != nil {
			return models, nil, fmt.Errorf("sync: image %d: %w", i, err)
		}
		img := pic.Image()
		infos[i].decodeMS = ms(time.Since(t0))
		infos[i].pixels = img.Width() * img.Height()
		before, err := modelRuns(reg)
		if err != nil {
			return models, nil, err
		}
		found, err := det.Detect(img)
		if err != nil {
			return models, nil, fmt.Errorf("sync: detect image %d: %w", i, err)
		}
		after, err := modelRuns(reg)
		if err != nil {
			return models, nil, err
		}
		runs := int(after - before)
		passes := 1
		if svc.Detection.Rotations && runs > 2 {
			passes = 4
		}
		second := runs - passes
		if max2 := map[bool]int{true: passes, false: 0}[svc.Detection.SecondScale > 0]; second < 0 || second > max2 {
			return models, nil, fmt.Errorf("sync: image %d: %d detector runs fit no split into passes (rotations %v) and second-scale runs (second scale %d): the face engine's policy changed",
				i, runs, svc.Detection.Rotations, svc.Detection.SecondScale)
		}
		infos[i].passes, infos[i].second, infos[i].faces = passes, second, len(found)
		for _, f := range found {
			c, _, err := face.AlignedCrop(img, f.Landmarks, 112)
			if err != nil {
				return models, nil, fmt.Errorf("sync: image %d: %w", i, err)
			}
			infos[i].crops = append(infos[i].crops, c)
		}
	}
	return models, infos, nil
}

// modelRuns is the number of model runs the inference histogram counted.
func modelRuns(g prometheus.Gatherer) (uint64, error) {
	fams, err := g.Gather()
	if err != nil {
		return 0, fmt.Errorf("sync: gather: %w", err)
	}
	var n uint64
	for _, f := range fams {
		if f.GetName() != "facestream_model_inference_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n, nil
}

// replayRuns bounds the runs of each kind in a model-time replay.
const replayRuns = 40

// measureModelTime replays the model work of the images (their passes and
// faces) on one worker and returns the mean time per run of each kind.
func measureModelTime(models *service.Models, svc config.Config, infos []imageInfo) (map[string]float64, error) {
	var w Workload
	for _, in := range infos {
		w.Images += in.passes
		w.ExtraDetections += in.second
		w.Faces += in.faces
		w.Crops = append(w.Crops, in.crops...)
	}
	// Only the mean per run is kept: a few dozen runs of each kind do.
	w.Images, w.ExtraDetections, w.Faces = min(w.Images, replayRuns), min(w.ExtraDetections, replayRuns), min(w.Faces, replayRuns)
	if w.ExtraDetections > 0 && svc.Detection.SecondScale != 320 {
		// replay's second-scale job is 320×320.
		return nil, fmt.Errorf("sync: detect.second_scale %d: the model-time replay knows 320 only", svc.Detection.SecondScale)
	}
	if w.Faces == 0 {
		return nil, errors.New("sync: no face in any image: nothing to price the per-face models with")
	}
	c, err := replay(models.Runtime, models.Pack, svc.Models.Dir, svc.ORT.IntraOpThreads, svc.ORT.Spinning, w, 1)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	return c.PerRunMS, nil
}

// meanRuns averages two per-run maps key by key.
func meanRuns(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] = (v + b[k]) / 2
	}
	return out
}

// runsString renders per-run times, sorted by kind.
func runsString(m map[string]float64) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %.2f", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
