package face

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// The detection tests run the real models on real images. They fail (never
// skip) when the environment the Makefile sets is missing.

var detRuntime struct {
	once sync.Once
	rt   *onnx.Runtime
	err  error
}

// detEnv returns the shared ONNX runtime (opened once per test binary and
// left open: ORT keeps one environment per process), the models directory
// and the test-data directory.
func detEnv(tb testing.TB) (rt *onnx.Runtime, models, testdata string) {
	tb.Helper()
	lib := os.Getenv("FACESTREAM_ORT_LIB")
	models, testdata = os.Getenv("FACESTREAM_MODELS"), os.Getenv("FACESTREAM_TESTDATA")
	if lib == "" || models == "" || testdata == "" {
		tb.Fatal("FACESTREAM_ORT_LIB, FACESTREAM_MODELS and FACESTREAM_TESTDATA must be set (make test sets them)")
	}
	detRuntime.once.Do(func() { detRuntime.rt, detRuntime.err = onnx.Open(onnx.RuntimeConfig{LibraryPath: lib}) })
	if detRuntime.err != nil {
		tb.Fatalf("open onnx runtime: %v", detRuntime.err)
	}
	return detRuntime.rt, models, testdata
}

// detModels are the detector exports in the shared models folder, described
// as a model pack would describe them.
var detModels = map[string]modelpack.Model{
	"det_500m": {Name: "det_500m", Kind: modelpack.Detector, Arch: modelpack.ArchSCRFD,
		File: "insightface/det_500m.onnx", Inputs: []string{"input.1"}},
	"scrfd_500m_kps": {Name: "scrfd_500m_kps", Kind: modelpack.Detector, Arch: modelpack.ArchSCRFD,
		File: "scrfd-hpc203/scrfd_500m_kps.onnx", Inputs: []string{"images"}},
	"det_2.5g": {Name: "det_2.5g", Kind: modelpack.Detector, Arch: modelpack.ArchSCRFD,
		File: "insightface/det_2.5g.onnx", Inputs: []string{"input.1"}},
	"scrfd_2.5g_bnkps": {Name: "scrfd_2.5g_bnkps", Kind: modelpack.Detector, Arch: modelpack.ArchSCRFD,
		File: "insightface/scrfd_2.5g_bnkps.onnx", Inputs: []string{"input.1"}},
	"scrfd_2.5g_kps": {Name: "scrfd_2.5g_kps", Kind: modelpack.Detector, Arch: modelpack.ArchSCRFD,
		File: "scrfd-hpc203/scrfd_2.5g_kps.onnx", Inputs: []string{"images"}},
	"yunet": {Name: "yunet", Kind: modelpack.Detector, Arch: modelpack.ArchYuNet,
		File: "yunet/face_detection_yunet_2023mar.onnx", Inputs: []string{"input"}, Threshold: 0.6},
	"yunet_dynamic": {Name: "yunet_dynamic", Kind: modelpack.Detector, Arch: modelpack.ArchYuNet,
		File: "yunet/yunet_s_dynamic.onnx", Inputs: []string{"input"}, Threshold: 0.6},
}

var detSCRFDExports = []string{"det_500m", "scrfd_500m_kps", "det_2.5g", "scrfd_2.5g_bnkps", "scrfd_2.5g_kps"}

// detOpen builds a detector for one of detModels, closed with the test.
func detOpen(tb testing.TB, name string, opts DetectorOptions) Detector {
	tb.Helper()
	rt, models, _ := detEnv(tb)
	m, ok := detModels[name]
	if !ok {
		tb.Fatalf("no test model %q", name)
	}
	if _, err := os.Stat(filepath.Join(models, m.File)); err != nil {
		tb.Fatalf("model file missing: %v", err)
	}
	if opts.Session.IntraOpThreads == 0 {
		opts.Session.IntraOpThreads = 2
	}
	d, err := NewDetector(rt, models, m, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Error(err)
		}
	})
	return d
}

// detImage decodes a test image (decoded once per test binary).
var detImages sync.Map // path -> *imaging.Image

func detImage(tb testing.TB, rel string) *imaging.Image {
	tb.Helper()
	_, _, testdata := detEnv(tb)
	p := filepath.Join(testdata, rel)
	if v, ok := detImages.Load(p); ok {
		return v.(*imaging.Image)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		tb.Fatalf("read test image: %v", err)
	}
	img, err := imaging.Decode(data, imaging.DefaultLimits)
	if err != nil {
		tb.Fatalf("%s: %v", rel, err)
	}
	detImages.Store(p, img)
	return img
}
