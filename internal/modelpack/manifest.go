package modelpack

import "path/filepath"

// Kind is what a model does in the face engine.
type Kind string

// The model kinds a pack can hold.
const (
	Detector   Kind = "detector"
	Recognizer Kind = "recognizer"
	GenderAge  Kind = "genderage"
	Emotion    Kind = "emotion"
)

// Architectures: how the engine pre- and post-processes a model's tensors.
const (
	ArchSCRFD            = "scrfd"             // SCRFD detector, any head layout (6/9 or 10/15 outputs)
	ArchYuNet            = "yunet"             // YuNet detector (cls/obj/bbox/kps per stride)
	ArchArcFace          = "arcface"           // ArcFace-style recognizer on an aligned 112x112 crop
	ArchGenderAgeBuffalo = "genderage-buffalo" // InsightFace buffalo_* genderage.onnx: 96x96 bbox crop, 3 outputs
	ArchGenderAge2018    = "genderage-2018"    // InsightFace 2018 MXNet model: aligned 112x112, 202 outputs
	ArchFEROpenCVZoo     = "fer-opencv-zoo"    // OpenCV Zoo facial expression recognizer, 7 classes
)

// Crop kinds a model can ask for.
const (
	CropLetterbox  = "letterbox"  // whole image, aspect kept, padded (detectors)
	CropArcFace112 = "arcface112" // 5-point similarity alignment to the ArcFace 112x112 template
	CropBBox       = "bbox"       // square crop centred on the box, scaled (buffalo genderage: 96x96)
)

// Model is one model file and everything needed to run it.
type Model struct {
	Name    string `json:"name"`
	Kind    Kind   `json:"kind"`
	Arch    string `json:"arch"`
	File    string `json:"file"`             // path relative to the models directory
	SHA256  string `json:"sha256"`           // checked at load
	Size    int64  `json:"size,omitempty"`   // bytes
	URL     string `json:"url,omitempty"`    // official download (a file, or an archive holding Member)
	Member  string `json:"member,omitempty"` // path inside the archive at URL
	License string `json:"license"`

	Inputs  []string `json:"inputs"`  // tensor names fed, in order
	Outputs []string `json:"outputs"` // tensor names fetched, in order

	InputWidth  int        `json:"input_width,omitempty"`  // model input size; 0 means dynamic (see also DynamicSize)
	InputHeight int        `json:"input_height,omitempty"` //
	ColorOrder  string     `json:"color_order"`            // "RGB" or "BGR"
	Mean        [3]float32 `json:"mean"`                   // per channel, in ColorOrder, on 0..255 values
	Std         [3]float32 `json:"std"`                    // input = (pixel - Mean) / Std
	Crop        string     `json:"crop"`                   // one of the Crop* kinds

	EmbeddingDim int      `json:"embedding_dim,omitempty"` // recognizers
	Labels       []string `json:"labels,omitempty"`        // class names (emotion), in output order

	// Threshold is the model's single documented decision threshold: the
	// detection score for detectors, the cosine similarity at which two faces
	// are the same person for recognizers.
	Threshold float32 `json:"threshold,omitempty"`
	// NMSThreshold is the IoU above which detections are suppressed (0.4 for SCRFD).
	NMSThreshold float32 `json:"nms_threshold,omitempty"`

	// Fields added after the first version of the manifest.

	// Commercial says whether this model's own licence allows commercial use.
	Commercial bool `json:"commercial"`
	// DynamicSize says the model takes other input sizes than
	// InputWidth×InputHeight, which is then the default size to run it at
	// (SCRFD: 640×640).
	DynamicSize bool `json:"dynamic_size,omitempty"`
	// DynamicBatch says the model's batch dimension is dynamic, so crops can
	// be run in batches; otherwise it runs one at a time.
	DynamicBatch bool `json:"dynamic_batch,omitempty"`
	// ArchiveSHA256 and ArchiveSize describe the archive at URL when it is not
	// the pack's own (Pack.URL); empty when unknown.
	ArchiveSHA256 string `json:"archive_sha256,omitempty"`
	ArchiveSize   int64  `json:"archive_size,omitempty"`
	// TensorsFromModel is set when the published tensor names are not known
	// here: Inputs and Outputs are then empty, and the session takes the
	// model's own tensors in model order (pkg/onnx's meaning of empty).
	TensorsFromModel bool `json:"tensors_from_model,omitempty"`
	// Source says where the file comes from (repository, release, archive).
	Source string `json:"source,omitempty"`
	// Notes records what a reader of the manifest must know: why a checksum
	// is missing, where a threshold comes from, licence caveats.
	Notes string `json:"notes,omitempty"`
}

// Path is the model file's location under the models directory dir.
func (m Model) Path(dir string) string {
	return filepath.Join(dir, filepath.FromSlash(m.File))
}

// ChecksumKnown reports whether the manifest holds the file's sha256.
func (m Model) ChecksumKnown() bool { return m.SHA256 != "" }

// Pack is a named set of models that work together (one of each kind at most).
type Pack struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	License     string  `json:"license"`          // shown to the user
	Commercial  bool    `json:"commercial"`       // whether the licence allows commercial use
	URL         string  `json:"url,omitempty"`    // official archive, when the pack ships as one
	SHA256      string  `json:"sha256,omitempty"` // of the archive
	Models      []Model `json:"models"`

	// Fields added after the first version of the manifest.

	// ArchiveSize is the byte size of the archive at URL; 0 when unknown.
	ArchiveSize int64 `json:"archive_size,omitempty"`
	// Notes records what a reader of the manifest must know.
	Notes string `json:"notes,omitempty"`
}

// Model returns the pack's model of the given kind.
func (p Pack) Model(k Kind) (Model, bool) {
	for _, m := range p.Models {
		if m.Kind == k {
			return m, true
		}
	}
	return Model{}, false
}

// Kinds lists the kinds of the pack's models, in manifest order.
func (p Pack) Kinds() []Kind {
	kinds := make([]Kind, len(p.Models))
	for i, m := range p.Models {
		kinds[i] = m.Kind
	}
	return kinds
}
