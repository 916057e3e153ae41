package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// Ceiling is the raw model throughput for the same work as the pipeline
// run: one detector run per image at the detector's input size and one run
// of every per-face model (recognizer, gender-age, emotion) per face found,
// replayed through bare onnx.Session.Run calls (no decoding, no messaging,
// no database) with the same session settings (IntraOpThreads, spinning)
// on the same cores: Workers goroutines run the jobs, the better of
// cores ÷ threads workers and one per core.
type Ceiling struct {
	Images         int                `json:"images"`
	Faces          int                `json:"faces"`
	Workers        int                `json:"workers"`
	IntraOpThreads int                `json:"intra_op_threads"`
	Spinning       bool               `json:"spinning"`
	PerRunMS       map[string]float64 `json:"per_run_ms"` // by model kind, mean of the replay
	// SyntheticInputs names the model kinds replayed on a synthetic
	// pattern rather than real faces (always the detector; see Workload).
	SyntheticInputs []string `json:"synthetic_inputs,omitempty"`
	Seconds         float64  `json:"seconds"`
	// CPUSeconds is the process's CPU time (user + system, every thread)
	// over the replay: with Seconds it shows how much of the cores the
	// replay had; per image it is the model work's CPU cost, which other
	// load on the machine changes far less than the wall time.
	CPUSeconds   float64 `json:"cpu_seconds"`
	ImagesPerSec float64 `json:"images_per_s"`
	FacesPerSec  float64 `json:"faces_per_s"`
}

// job is one model run of the replay: its model and which of the model's
// inputs (cycled).
type job struct {
	kind modelpack.Kind
	n    int
}

// secondScale is the detector job at the engine's second scale.
const secondScale modelpack.Kind = "detector@320"

// Workload is the model work replayed: Images detector runs at the
// detector's input size, ExtraDetections more at the second scale (320 px),
// and one run of every per-face model per face.
type Workload struct {
	Images, ExtraDetections, Faces int
	// Crops are real aligned face crops (112×112) the per-face models run
	// on, cycled: their run time depends on the input (the int8 expression
	// model took 10.8 ms on a face, 8.1 ms on a synthetic pattern). Without
	// crops, or for a model whose input is another size, a synthetic
	// pattern is used and Ceiling.SyntheticInputs says so. The detector's
	// time does not depend on its input (21.3 vs 21.7 ms).
	Crops []*imaging.Image
}

// measureCeiling replays images detector runs and faces runs of each
// per-face model of pack on rt.
func measureCeiling(rt *onnx.Runtime, pack modelpack.Pack, modelsDir string, threads int, spinning bool, w Workload) (Ceiling, error) {
	// One stream of small models with several intra-op threads leaves
	// cores idle between operators, so the ceiling is the better of
	// cores/threads workers and one worker per core.
	cores := runtime.NumCPU()
	first := cores
	if threads > 0 {
		first = max(1, cores/threads)
	} else {
		first = 1 // ORT's default: one thread per core
	}
	best, err := replay(rt, pack, modelsDir, threads, spinning, w, first)
	if err != nil || first == cores {
		return best, err
	}
	other, err := replay(rt, pack, modelsDir, threads, spinning, w, cores)
	if err != nil {
		return best, err
	}
	if other.ImagesPerSec > best.ImagesPerSec {
		best = other
	}
	return best, nil
}

// replay runs workload w on the given number of workers.
func replay(rt *onnx.Runtime, pack modelpack.Pack, modelsDir string, threads int, spinning bool, w Workload, workers int) (Ceiling, error) {
	images, faces := w.Images, w.Faces
	c := Ceiling{Images: images, Faces: faces, IntraOpThreads: threads, Spinning: spinning, PerRunMS: map[string]float64{}, Workers: workers}
	type model struct {
		sess   *onnx.Session
		inputs []onnx.Tensor
	}
	models := map[modelpack.Kind]model{}
	defer func() {
		for k, m := range models {
			if k != secondScale {
				_ = m.sess.Close()
			}
		}
	}()
	var jobs []job
	for _, m := range pack.Models {
		n := faces
		if m.Kind == modelpack.Detector {
			n = images
		}
		if n == 0 {
			continue
		}
		sess, err := rt.NewSession(filepath.Join(modelsDir, m.File), onnx.SessionConfig{
			IntraOpThreads: threads, NoSpinning: !spinning, Inputs: m.Inputs, Outputs: m.Outputs,
		})
		if err != nil {
			return c, fmt.Errorf("ceiling: %w", err)
		}
		in := sess.Inputs()[0]
		shape := make([]int64, len(in.Shape))
		for i, d := range in.Shape {
			switch {
			case d > 0:
				shape[i] = d
			case i == 0:
				shape[i] = 1
			case i == len(shape)-2:
				shape[i] = int64(max(m.InputHeight, 1))
			case i == len(shape)-1:
				shape[i] = int64(max(m.InputWidth, 1))
			default:
				shape[i] = 3
			}
		}
		t := onnx.NewTensor(shape...)
		for i := range t.Data {
			t.Data[i] = float32(i%255)/128 - 1 // not all zeros: a realistic range
		}
		inputs, synthetic := []onnx.Tensor{t}, true
		if m.Kind != modelpack.Detector {
			if real := cropInputs(m, w.Crops); len(real) > 0 {
				inputs, synthetic = real, false
			}
		}
		if synthetic {
			c.SyntheticInputs = append(c.SyntheticInputs, string(m.Kind))
		}
		models[m.Kind] = model{sess: sess, inputs: inputs}
		if m.Kind == modelpack.Detector && w.ExtraDetections > 0 {
			small := onnx.NewTensor(shape[0], shape[1], 320, 320)
			copy(small.Data, t.Data)
			models[secondScale] = model{sess: sess, inputs: []onnx.Tensor{small}}
			if _, err := sess.Run(small); err != nil {
				return c, fmt.Errorf("ceiling: warm up %s at 320: %w", m.Name, err)
			}
			for range w.ExtraDetections {
				jobs = append(jobs, job{kind: secondScale})
			}
		}
		// Warm up: the first runs allocate and plan.
		for range 3 {
			if _, err := sess.Run(t); err != nil {
				return c, fmt.Errorf("ceiling: warm up %s: %w", m.Name, err)
			}
		}
		for i := range n {
			jobs = append(jobs, job{kind: m.Kind, n: i})
		}
	}
	// Interleave the kinds as the pipeline would see them.
	jobs = interleave(jobs)
	var (
		mu    sync.Mutex
		spent = map[modelpack.Kind]time.Duration{}
		count = map[modelpack.Kind]int{}
		next  = make(chan job)
		errs  = make(chan error, c.Workers)
		wg    sync.WaitGroup
	)
	start, cpu0 := time.Now(), processCPU()
	for range c.Workers {
		wg.Go(func() {
			for j := range next {
				m := models[j.kind]
				t0 := time.Now()
				if _, err := m.sess.Run(m.inputs[j.n%len(m.inputs)]); err != nil {
					errs <- err
					return
				}
				d := time.Since(t0)
				mu.Lock()
				spent[j.kind] += d
				count[j.kind]++
				mu.Unlock()
			}
		})
	}
	for _, j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return c, fmt.Errorf("ceiling: %w", err)
	}
	c.Seconds = time.Since(start).Seconds()
	c.CPUSeconds = processCPU() - cpu0
	for k, d := range spent {
		c.PerRunMS[string(k)] = float64(d) / float64(time.Millisecond) / float64(count[k])
	}
	if c.Seconds > 0 {
		c.ImagesPerSec = float64(images) / c.Seconds
		c.FacesPerSec = float64(faces) / c.Seconds
	}
	return c, nil
}

// interleave spreads the jobs of each kind evenly over the sequence.
func interleave(jobs []job) []job {
	byKind := map[modelpack.Kind][]job{}
	var kinds []modelpack.Kind
	for _, j := range jobs {
		if _, ok := byKind[j.kind]; !ok {
			kinds = append(kinds, j.kind)
		}
		byKind[j.kind] = append(byKind[j.kind], j)
	}
	out := make([]job, 0, len(jobs))
	for len(out) < len(jobs) {
		for _, k := range kinds {
			if q := byKind[k]; len(q) > 0 {
				out = append(out, q[0])
				byKind[k] = q[1:]
			}
		}
	}
	return out
}

// processCPU is this process's CPU time so far (user + system, all
// threads), in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// cropInputs is model m's input for each crop, or nil when there are none
// or they are not the size m takes.
func cropInputs(m modelpack.Model, crops []*imaging.Image) []onnx.Tensor {
	var out []onnx.Tensor
	for _, c := range crops {
		t, err := face.CropTensor(m, c)
		if err != nil {
			return nil
		}
		out = append(out, t)
	}
	return out
}

// faceCrops detects the faces of the first images (at most max crops) with
// pack's detector and returns their aligned 112×112 crops: the real faces
// the ceiling's per-face models replay on.
func faceCrops(rt *onnx.Runtime, pack modelpack.Pack, modelsDir string, images []string, limit int) ([]*imaging.Image, error) {
	m, ok := pack.Model(modelpack.Detector)
	if !ok {
		return nil, fmt.Errorf("ceiling: pack %s has no detector", pack.Name)
	}
	det, err := face.NewDetector(rt, modelsDir, m, face.DetectorOptions{Session: onnx.SessionConfig{IntraOpThreads: 1, NoSpinning: true}})
	if err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	defer det.Close()
	var crops []*imaging.Image
	seen := map[string]bool{}
	for _, p := range images {
		if len(crops) >= limit {
			break
		}
		if seen[p] {
			continue
		}
		seen[p] = true
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("ceiling: %w", err)
		}
		img, err := imaging.Decode(data, imaging.DefaultLimits)
		if err != nil {
			continue // the pipeline rejects it too: no face to replay
		}
		faces, err := det.Detect(img)
		if err != nil {
			return nil, fmt.Errorf("ceiling: %s: %w", p, err)
		}
		for _, f := range faces {
			c, _, err := face.AlignedCrop(img, f.Landmarks, 112)
			if err != nil {
				return nil, fmt.Errorf("ceiling: %s: %w", p, err)
			}
			crops = append(crops, c)
		}
	}
	return crops, nil
}
