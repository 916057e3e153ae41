package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/imaging"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/pkg/onnx"
)

// analyzeFlags are the analyze command's own flags. The models directory,
// the pack and ONNX Runtime's settings come from internal/config (the
// inference settings: --models, --model-pack, --ort-lib,
// --intra-op-threads, … and their FACESTREAM_* variables).
type analyzeFlags struct {
	embedding, noAttrs bool
	pretty             bool
	draw               string
	maxFaces           int
	minFaceSize        float64
	secondScale        int
	rotate             bool
}

// analyzeSettingNames are the internal/config settings analyze reads.
var analyzeSettingNames = []string{
	"models.dir", "models.pack", "ort.library", "ort.provider", "ort.cpu_fallback",
	"ort.device_id", "ort.intra_op_threads", "ort.inter_op_threads",
}

// analyzeConfigBinary is the internal/config binary whose inference settings
// analyze shares; config has no binary of its own for this command.
const analyzeConfigBinary = config.Attrs

func newAnalyzeCommand(s Streams, getenv func(string) string) *cobra.Command {
	var (
		f  analyzeFlags
		rf remoteFlags
	)
	cfs := pflag.NewFlagSet("analyze-config", pflag.ContinueOnError)
	config.AddFlags(cfs, analyzeConfigBinary)
	cmd := &cobra.Command{
		Use:   "analyze IMAGE...",
		Short: "Detect and describe the faces in images: one JSON object per image",
		Long: `analyze runs the face engine in this process on each image and prints one JSON
object per image and line: the image size and, for each face, its box, 5 landmarks,
detection score, age, gender, emotion with every class probability, head pose (yaw,
pitch, roll in degrees; yaw > 0 turned to the image's right, pitch > 0 looking up,
roll > 0 clockwise) and quality (sharpness, brightness, face size, usable, reason).
--embedding adds the L2-normalised embedding.

--draw writes the picture with the results painted on it: boxes (green usable,
orange not), landmarks (eyes blue, nose red, mouth magenta) and labels (score,
gender and age, emotion; pose; quality). With one image it is the PNG file to
write; with several, a directory (created) that receives NAME.png per image.

With --server (or FACESTREAM_SERVER) each image goes to a running server instead
(POST /v1/analyze, key from FACESTREAM_API_KEY or --api-key-file) and its answer is
printed: the pipeline's result, stored under the image id it prints.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if c, err := rf.remote(getenv); err != nil || c != nil {
				if err != nil {
					return fmt.Errorf("analyze: %w", err)
				}
				return analyzeRemote(cmd.Context(), s, c, f, args)
			}
			cfg, err := config.Load(analyzeConfigBinary, cfs, onlyEnv(getenv, analyzeSettingNames))
			if err != nil {
				return fmt.Errorf("analyze: %w", err)
			}
			return runAnalyze(cmd.Context(), s, cfg, f, args)
		},
	}
	fl := cmd.Flags()
	for _, name := range analyzeSettingNames {
		for _, st := range config.For(analyzeConfigBinary) {
			if st.Name == name {
				fl.AddFlag(cfs.Lookup(st.Flag))
			}
		}
	}
	rf.add(fl)
	fl.BoolVar(&f.embedding, "embedding", false, "include each face's embedding")
	fl.BoolVar(&f.noAttrs, "no-attributes", false, "skip age, gender and emotion")
	fl.BoolVar(&f.pretty, "pretty", false, "indent the JSON")
	fl.StringVar(&f.draw, "draw", "", "write the annotated picture: a PNG path for one image, a directory for several")
	fl.IntVar(&f.maxFaces, "max-faces", 0, "keep at most this many faces per image, the largest (0 keeps all)")
	fl.Float64Var(&f.minFaceSize, "min-face-size", 0, "drop faces whose shorter box side is below this many pixels")
	fl.IntVar(&f.secondScale, "second-scale", face.DefaultSecondScale, "second detection pass with the picture fitted into this square, for faces that fill it (0: off)")
	fl.BoolVar(&f.rotate, "rotate", true, "when no face is found upright, look again with the picture turned 90°, 180° and 270°")
	return cmd
}

// onlyEnv is getenv restricted to the variables of the named settings, so
// that analyze is not configured (or failed) by a stage's other variables.
func onlyEnv(getenv func(string) string, names []string) func(string) string {
	allowed := map[string]bool{}
	for _, st := range config.Settings() {
		if slices.Contains(names, st.Name) {
			allowed[st.Env] = true
		}
	}
	return func(k string) string {
		if allowed[k] {
			return getenv(k)
		}
		return ""
	}
}

// analyzeRecord is the JSON written for one image.
type analyzeRecord struct {
	File   string            `json:"file"`
	Width  int               `json:"width,omitempty"`
	Height int               `json:"height,omitempty"`
	Pack   string            `json:"pack,omitempty"`
	Faces  []face.FaceResult `json:"faces"`
	Drawn  string            `json:"drawn,omitempty"`
	Error  string            `json:"error,omitempty"`
}

func runAnalyze(ctx context.Context, s Streams, cfg config.Config, f analyzeFlags, files []string) error {
	pack, err := modelpack.Lookup(cfg.Models.Pack)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	drawDir, err := drawTarget(f.draw, len(files))
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	provider, err := onnx.ParseProvider(cfg.ORT.Provider)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	rt, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: cfg.ORT.Library})
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer rt.Close()
	opts := face.DefaultEngineOptions()
	opts.Threads, opts.InterOpThreads = cfg.ORT.IntraOpThreads, cfg.ORT.InterOpThreads
	opts.Provider, opts.DeviceID, opts.FallbackToCPU = provider, cfg.ORT.DeviceID, cfg.ORT.CPUFallback
	opts.Detection.MaxFaces, opts.Detection.MaxFacesByArea = f.maxFaces, true
	opts.Detection.MinFaceSize = float32(f.minFaceSize)
	opts.Detection.SecondScale = f.secondScale
	opts.Detection.TryRotations = f.rotate
	eng, err := face.NewEngine(rt, pack, cfg.Models.Dir, opts)
	if err != nil {
		return fmt.Errorf("analyze: %w", err)
	}
	defer eng.Close()

	enc := json.NewEncoder(s.Out)
	if f.pretty {
		enc.SetIndent("", "  ")
	}
	failed := 0
	for _, file := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		rec := analyzeOne(eng, f, file, drawDir)
		if rec.Error != "" {
			failed++
		}
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("analyze: write result: %w", err)
		}
	}
	if failed > 0 {
		return fmt.Errorf("analyze: %d of %d images failed (see their \"error\")", failed, len(files))
	}
	return nil
}

// drawTarget decides where --draw writes: "" for nowhere, a directory
// (created) when there are several images or the path is a directory,
// else the path itself as one PNG file.
func drawTarget(path string, images int) (string, error) {
	if path == "" {
		return "", nil
	}
	st, err := os.Stat(path)
	isDir := err == nil && st.IsDir()
	if images > 1 || isDir || strings.HasSuffix(path, string(os.PathSeparator)) {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return "", fmt.Errorf("draw directory: %w", err)
		}
		return path, nil
	}
	return "", nil
}

func analyzeOne(eng *face.Engine, f analyzeFlags, file, drawDir string) analyzeRecord {
	rec := analyzeRecord{File: file, Pack: eng.Pack(), Faces: []face.FaceResult{}}
	data, err := os.ReadFile(file)
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	img, err := imaging.Decode(data, imaging.DefaultLimits)
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	rec.Width, rec.Height = img.Width(), img.Height()
	res, err := eng.Analyze(img, face.AnalyzeOptions{Embedding: f.embedding, NoAttributes: f.noAttrs})
	if err != nil {
		rec.Error = err.Error()
		return rec
	}
	rec.Faces = res
	if f.draw == "" {
		return rec
	}
	out := f.draw
	if drawDir != "" {
		base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		out = filepath.Join(drawDir, base+".png")
	}
	if err := drawResults(img, res, out); err != nil {
		rec.Error = err.Error()
		return rec
	}
	rec.Drawn = out
	return rec
}

// Colours of the drawing, RGBA.
var (
	drawUsable   = color.RGBA{R: 40, G: 220, B: 60, A: 255}
	drawUnusable = color.RGBA{R: 255, G: 150, B: 0, A: 255}
	drawInk      = color.RGBA{A: 255}
	// Landmarks: eyes blue, nose red, mouth corners magenta.
	drawEye, drawNose, drawMouth = color.RGBA{R: 30, G: 120, B: 255, A: 255}, color.RGBA{R: 255, A: 255}, color.RGBA{R: 230, B: 230, A: 255}
	drawLandmark                 = [5]color.RGBA{drawEye, drawEye, drawNose, drawMouth, drawMouth}
)

// drawResults paints each face's box (green: usable for recognition,
// orange: not), its 5 landmarks and two labels in the box's colour: above
// the box "#index score gender+age emotion p", below it the pose and the
// quality verdict. It writes a PNG.
func drawResults(img *imaging.Image, res []face.FaceResult, out string) error {
	side := float64(max(img.Width(), img.Height()))
	scale := max(0.35, side/2000)
	thick := max(1, int(side/600))
	var shapes []imaging.Shape
	for i, r := range res {
		c := drawUsable
		if !r.Quality.Usable {
			c = drawUnusable
		}
		shapes = append(shapes, imaging.Rect{X0: r.Box[0], Y0: r.Box[1], X1: r.Box[2], Y1: r.Box[3], Color: c, Thickness: thick})
		for k, p := range r.Landmarks {
			shapes = append(shapes, imaging.Dot{X: p[0], Y: p[1], Radius: thick + 1, Color: drawLandmark[k]})
		}
		top, bottom := faceLabels(i, r)
		shapes = append(shapes,
			imaging.Label{X: r.Box[0], Y: r.Box[1], Above: true, Lines: top, Text: drawInk, Fill: c, Scale: scale},
			imaging.Label{X: r.Box[0], Y: r.Box[3], Lines: bottom, Text: drawInk, Fill: c, Scale: scale})
	}
	drawn, err := img.Draw(shapes...)
	if err != nil {
		return fmt.Errorf("draw: %w", err)
	}
	png, err := drawn.EncodePNG()
	if err != nil {
		return fmt.Errorf("draw: %w", err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		return fmt.Errorf("draw: %w", err)
	}
	return nil
}

// faceLabels are the text lines drawn above and below one face's box.
func faceLabels(i int, r face.FaceResult) (top, bottom []string) {
	head := fmt.Sprintf("#%d %.2f", i, r.Score)
	if r.AgeGender != nil {
		g := "M"
		if r.Gender == face.Female {
			g = "F"
		}
		head += fmt.Sprintf(" %s%d", g, r.Age)
	}
	if r.Emotion != nil {
		head += fmt.Sprintf(" %s %.2f", r.Emotion.Label, r.Emotion.Score)
	}
	pose := fmt.Sprintf("yaw %+.0f pitch %+.0f roll %+.0f", r.Pose.Yaw, r.Pose.Pitch, r.Pose.Roll)
	q := "usable"
	if !r.Quality.Usable {
		q = "not usable: " + r.Quality.Reason
	}
	return []string{head}, []string{pose, q}
}
