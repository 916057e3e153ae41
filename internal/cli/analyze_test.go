package cli_test

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/facestream/facestream/internal/imaging"
)

// analyzeEnv is the environment analyze reads, from the test's own (the
// Makefile sets it); missing settings fail the test.
func analyzeEnv(t *testing.T) (env map[string]string, testdata string) {
	t.Helper()
	env = map[string]string{}
	for _, k := range []string{"FACESTREAM_MODELS", "FACESTREAM_ORT_LIB", "FACESTREAM_TESTDATA"} {
		v := os.Getenv(k)
		if v == "" {
			t.Fatalf("%s is not set (run the tests with make test)", k)
		}
		env[k] = v
	}
	env["FACESTREAM_INTRA_OP_THREADS"] = "1"
	env["FACESTREAM_NATS_URL"] = "::not a url::" // not analyze's: must be ignored
	return env, env["FACESTREAM_TESTDATA"]
}

type analyzeLine struct {
	File   string `json:"file"`
	Width  int    `json:"width"`
	Height int    `json:"height"`
	Pack   string `json:"pack"`
	Drawn  string `json:"drawn"`
	Error  string `json:"error"`
	Faces  []struct {
		Box       [4]float32    `json:"box"`
		Landmarks [5][2]float32 `json:"landmarks"`
		Score     float32       `json:"det_score"`
		Gender    string        `json:"gender"`
		Age       *int          `json:"age"`
		Emotion   *struct {
			Label string             `json:"label"`
			Probs map[string]float32 `json:"probs"`
		} `json:"emotion"`
		Pose    map[string]float32 `json:"pose"`
		Quality struct {
			Sharpness float32 `json:"sharpness"`
			FaceSize  float32 `json:"face_size"`
			Usable    bool    `json:"usable"`
			Reason    string  `json:"reason"`
		} `json:"quality"`
		Embedding []float32 `json:"embedding"`
	} `json:"faces"`
}

func parseAnalyze(t *testing.T, stdout string) []analyzeLine {
	t.Helper()
	var lines []analyzeLine
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l analyzeLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line is not JSON: %v\n%s", err, sc.Text())
		}
		lines = append(lines, l)
	}
	return lines
}

func TestAnalyze(t *testing.T) {
	env, testdata := analyzeEnv(t)
	couple := filepath.Join(testdata, "deepface", "couple.jpg")
	noFace := filepath.Join(testdata, "insightface", "inspireface", "data", "bulk", "view.jpg")
	dir := filepath.Join(t.TempDir(), "drawn")
	stdout, stderr, err := facestream(t, env, "analyze", "--embedding", "--draw", dir, couple, noFace)
	if err != nil {
		t.Fatalf("analyze: %v\n%s", err, stderr)
	}
	lines := parseAnalyze(t, stdout)
	if len(lines) != 2 {
		t.Fatalf("%d output lines, want 2:\n%s", len(lines), stdout)
	}
	c := lines[0]
	if c.File != couple || c.Pack != "dev" || c.Width == 0 || len(c.Faces) != 2 || c.Error != "" {
		t.Fatalf("couple.jpg: %+v", c)
	}
	for i, f := range c.Faces {
		if len(f.Embedding) != 128 || f.Gender == "" || f.Age == nil || f.Emotion == nil || len(f.Emotion.Probs) != 7 ||
			f.Pose == nil || f.Quality.Sharpness <= 0 || f.Quality.Reason == "" || f.Score < 0.5 {
			t.Errorf("couple.jpg face %d incomplete: %+v", i, f)
		}
	}
	if lines[1].File != noFace || len(lines[1].Faces) != 0 || lines[1].Error != "" {
		t.Errorf("view.jpg: %+v, want no face", lines[1])
	}
	for i, l := range lines {
		want := filepath.Join(dir, strings.TrimSuffix(filepath.Base(l.File), filepath.Ext(l.File))+".png")
		if l.Drawn != want {
			t.Errorf("line %d drawn %q, want %q", i, l.Drawn, want)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "couple.png"))
	if err != nil {
		t.Fatal(err)
	}
	drawn, err := imaging.Decode(data, imaging.DefaultLimits)
	if err != nil || drawn.Width() != c.Width || drawn.Height() != c.Height {
		t.Fatalf("drawn couple.png: %v", err)
	}
	// The box outline is painted in green (usable) or orange at its corner.
	b := c.Faces[0].Box
	if r, g, _ := drawn.At(int(b[0]+0.5)+1, int(b[3]-20)); !(g > 120 && (r < 100 || r > 200)) {
		t.Errorf("no box outline at the first face's left edge: %d,%d", r, g)
	}
}

func TestAnalyzeOneImageDrawsToAFile(t *testing.T) {
	env, testdata := analyzeEnv(t)
	out := filepath.Join(t.TempDir(), "one.png")
	stdout, stderr, err := facestream(t, env, "analyze", "--no-attributes", "--draw", out,
		filepath.Join(testdata, "deepface", "img5.jpg"))
	if err != nil {
		t.Fatalf("analyze: %v\n%s", err, stderr)
	}
	l := parseAnalyze(t, stdout)
	if len(l) != 1 || len(l[0].Faces) != 1 || l[0].Drawn != out || l[0].Faces[0].Gender != "" || l[0].Faces[0].Embedding != nil {
		t.Fatalf("img5.jpg: %+v", l)
	}
	if _, err := os.Stat(out); err != nil {
		t.Error(err)
	}
}

func TestAnalyzeErrors(t *testing.T) {
	env, testdata := analyzeEnv(t)
	notImage := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notImage, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, _, err := facestream(t, env, "analyze", notImage, filepath.Join(testdata, "deepface", "img5.jpg"))
	if err == nil || !strings.Contains(err.Error(), "1 of 2 images failed") {
		t.Errorf("one bad file: %v", err)
	}
	if l := parseAnalyze(t, stdout); len(l) != 2 || l[0].Error == "" || len(l[1].Faces) != 1 {
		t.Errorf("one bad file: %+v", l)
	}
	if _, _, err := facestream(t, env, "analyze"); err == nil {
		t.Error("no image accepted")
	}
	bad := map[string]string{}
	for k, v := range env {
		bad[k] = v
	}
	bad["FACESTREAM_MODEL_PACK"] = "no-such-pack"
	if _, _, err := facestream(t, bad, "analyze", notImage); err == nil || !strings.Contains(err.Error(), "no-such-pack") {
		t.Errorf("unknown pack: %v", err)
	}
	bad["FACESTREAM_MODEL_PACK"], bad["FACESTREAM_MODELS"] = "dev", t.TempDir()
	if _, _, err := facestream(t, bad, "analyze", notImage); err == nil {
		t.Error("empty models directory accepted")
	}
}
