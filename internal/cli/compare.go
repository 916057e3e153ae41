package cli

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// engineFlags adds the inference settings (as analyze reads them) to fl and
// returns the flag set they are parsed into.
func engineFlags(fl *pflag.FlagSet) *pflag.FlagSet {
	cfs := pflag.NewFlagSet("engine-config", pflag.ContinueOnError)
	config.AddFlags(cfs, analyzeConfigBinary)
	for _, name := range analyzeSettingNames {
		for _, st := range config.For(analyzeConfigBinary) {
			if st.Name == name && fl.Lookup(st.Flag) == nil {
				fl.AddFlag(cfs.Lookup(st.Flag))
			}
		}
	}
	return cfs
}

// localEngine is the face engine of this process, for the local mode of
// compare and search.
type localEngine struct {
	rt   *onnx.Runtime
	eng  *face.Engine
	pack modelpack.Pack
}

func openLocalEngine(cfs *pflag.FlagSet, getenv func(string) string) (*localEngine, error) {
	cfg, err := config.Load(analyzeConfigBinary, cfs, onlyEnv(getenv, analyzeSettingNames))
	if err != nil {
		return nil, err
	}
	pack, err := modelpack.Lookup(cfg.Models.Pack)
	if err != nil {
		return nil, err
	}
	provider, err := onnx.ParseProvider(cfg.ORT.Provider)
	if err != nil {
		return nil, err
	}
	rt, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: cfg.ORT.Library})
	if err != nil {
		return nil, err
	}
	opts := face.DefaultEngineOptions()
	opts.Threads, opts.InterOpThreads = cfg.ORT.IntraOpThreads, cfg.ORT.InterOpThreads
	opts.Provider, opts.DeviceID, opts.FallbackToCPU = provider, cfg.ORT.DeviceID, cfg.ORT.CPUFallback
	eng, err := face.NewEngine(rt, pack, cfg.Models.Dir, opts)
	if err != nil {
		return nil, errors.Join(err, rt.Close())
	}
	return &localEngine{rt: rt, eng: eng, pack: pack}, nil
}

func (l *localEngine) Close() error { return errors.Join(l.eng.Close(), l.rt.Close()) }

// recognizer returns the pack's recognizer name and threshold.
func (l *localEngine) recognizer() (string, float32) {
	m, _ := l.pack.Model(modelpack.Recognizer)
	return m.Name, m.Threshold
}

// largestFace embeds the largest face of an image file.
func (l *localEngine) largestFace(path string) (face.FaceResult, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return face.FaceResult{}, err
	}
	img, err := imaging.Decode(data, imaging.DefaultLimits)
	if err != nil {
		return face.FaceResult{}, fmt.Errorf("%s: %w", path, err)
	}
	res, err := l.eng.Analyze(img, face.AnalyzeOptions{Embedding: true, NoAttributes: true})
	if err != nil {
		return face.FaceResult{}, fmt.Errorf("%s: %w", path, err)
	}
	best, area := -1, float32(-1)
	for i, f := range res {
		if a := (f.Box[2] - f.Box[0]) * (f.Box[3] - f.Box[1]); a > area && f.Embedding != nil {
			best, area = i, a
		}
	}
	if best < 0 {
		return face.FaceResult{}, fmt.Errorf("%s: no face", path)
	}
	return res[best], nil
}

// compareResult is what compare prints (the API's answer in remote mode).
type compareResult struct {
	Similarity float32 `json:"similarity"`
	Threshold  float32 `json:"threshold"`
	Verdict    string  `json:"verdict"`
	Same       bool    `json:"same"`
	Model      string  `json:"model"`
}

func newCompareCommand(s Streams, getenv func(string) string) *cobra.Command {
	var (
		rf     remoteFlags
		faces  bool
		pretty bool
	)
	cmd := &cobra.Command{
		Use:   "compare IMAGE_A IMAGE_B",
		Short: "1:1 — are the largest faces of two images the same person?",
		Long: `compare prints the cosine similarity of the largest face of each image and the verdict
("same" at or above the model pack's threshold, else "different").

With --server (or FACESTREAM_SERVER) it asks a running server (POST /v1/compare);
--face-ids compares two stored face ids there instead of two images. Without a
server it runs the face engine in this process.`,
		Args: cobra.ExactArgs(2),
	}
	rf.add(cmd.Flags())
	cmd.Flags().BoolVar(&faces, "face-ids", false, "the arguments are stored face ids (needs --server)")
	cmd.Flags().BoolVar(&pretty, "pretty", false, "indent the JSON")
	cfs := engineFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		c, err := rf.remote(getenv)
		if err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		if c != nil {
			var out map[string]any
			if faces {
				err = c.do(cmd.Context(), "POST", "/v1/compare", map[string]any{"face_ids": args}, nil, &out)
			} else {
				err = c.do(cmd.Context(), "POST", "/v1/compare", nil, []file{{"images", args[0]}, {"images", args[1]}}, &out)
			}
			if err != nil {
				return fmt.Errorf("compare: %w", err)
			}
			return printJSON(s.Out, out, pretty)
		}
		if faces {
			return fmt.Errorf("compare: %w", needRemote("--face-ids"))
		}
		res, err := compareLocal(cmd.Context(), cfs, getenv, args[0], args[1])
		if err != nil {
			return fmt.Errorf("compare: %w", err)
		}
		return printJSON(s.Out, res, pretty)
	}
	return cmd
}

func compareLocal(_ context.Context, cfs *pflag.FlagSet, getenv func(string) string, a, b string) (compareResult, error) {
	l, err := openLocalEngine(cfs, getenv)
	if err != nil {
		return compareResult{}, err
	}
	defer l.Close()
	fa, err := l.largestFace(a)
	if err != nil {
		return compareResult{}, err
	}
	fb, err := l.largestFace(b)
	if err != nil {
		return compareResult{}, err
	}
	model, th := l.recognizer()
	sim := face.Cosine(fa.Embedding, fb.Embedding)
	res := compareResult{Similarity: sim, Threshold: th, Same: sim >= th, Verdict: "different", Model: model}
	if res.Same {
		res.Verdict = "same"
	}
	return res, nil
}
