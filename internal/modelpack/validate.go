package modelpack

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
)

// ErrInvalid is wrapped by every validation error.
var ErrInvalid = errors.New("invalid model pack")

var (
	packName = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)
	hexSHA   = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// archFor says which kind each architecture serves.
var archFor = map[string]Kind{
	ArchSCRFD:            Detector,
	ArchYuNet:            Detector,
	ArchArcFace:          Recognizer,
	ArchGenderAgeBuffalo: GenderAge,
	ArchGenderAge2018:    GenderAge,
	ArchFEROpenCVZoo:     Emotion,
}

// Parse decodes one pack from JSON, refusing unknown fields, and validates it.
func Parse(data []byte) (Pack, error) {
	var p Pack
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Pack{}, fmt.Errorf("parse model pack: %w", err)
	}
	if dec.More() {
		return Pack{}, errors.New("parse model pack: trailing data after the pack")
	}
	if err := p.Validate(); err != nil {
		return Pack{}, err
	}
	return p, nil
}

// Validate checks the pack and all its models, and reports every problem
// found (joined), each wrapping ErrInvalid. A pack needs a name,
// description, licence, a detector, and at most one model of each kind; it
// may claim commercial use only if every model's licence allows it.
func (p Pack) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("pack %s: %s: %w", p.Name, fmt.Sprintf(format, args...), ErrInvalid))
	}
	if !packName.MatchString(p.Name) {
		bad("name %q: want lower-case letters, digits, '-', '_' or '.'", p.Name)
	}
	if strings.TrimSpace(p.Description) == "" {
		bad("no description")
	}
	if strings.TrimSpace(p.License) == "" {
		bad("no licence")
	}
	if p.SHA256 != "" && !hexSHA.MatchString(p.SHA256) {
		bad("archive sha256 %q: want 64 lower-case hex digits", p.SHA256)
	}
	if p.SHA256 != "" && p.URL == "" {
		bad("archive sha256 without an archive url")
	}
	if p.URL != "" {
		if err := checkURL(p.URL); err != nil {
			bad("url: %v", err)
		}
	}
	if p.ArchiveSize < 0 {
		bad("archive size %d", p.ArchiveSize)
	}
	if len(p.Models) == 0 {
		bad("no models")
	}
	kinds := map[Kind]string{}
	names := map[string]bool{}
	files := map[string]string{}
	allCommercial := true
	for _, m := range p.Models {
		if err := m.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("pack %s: %w", p.Name, err))
		}
		if other, dup := kinds[m.Kind]; dup && m.Kind != "" {
			bad("two %s models (%s and %s): a pack holds at most one of each kind", m.Kind, other, m.Name)
		}
		kinds[m.Kind] = m.Name
		if names[m.Name] {
			bad("two models named %q", m.Name)
		}
		names[m.Name] = true
		if other, dup := files[m.File]; dup && m.File != "" {
			bad("models %s and %s share the file %s", other, m.Name, m.File)
		}
		files[m.File] = m.Name
		allCommercial = allCommercial && m.Commercial
	}
	if _, ok := kinds[Detector]; !ok && len(p.Models) > 0 {
		bad("no detector")
	}
	if p.Commercial && !allCommercial {
		bad("marked commercial, but not every model's licence allows commercial use")
	}
	return errors.Join(errs...)
}

// Validate checks one model's manifest entry (see the field docs); every
// problem is reported, each wrapping ErrInvalid.
func (m Model) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("model %s: %s: %w", m.Name, fmt.Sprintf(format, args...), ErrInvalid))
	}
	if strings.TrimSpace(m.Name) == "" {
		bad("no name")
	}
	want, known := archFor[m.Arch]
	switch {
	case m.Kind != Detector && m.Kind != Recognizer && m.Kind != GenderAge && m.Kind != Emotion:
		bad("kind %q: want detector, recognizer, genderage or emotion", m.Kind)
	case !known:
		bad("arch %q is not one the engine knows", m.Arch)
	case want != m.Kind:
		bad("arch %s is a %s, not a %s", m.Arch, want, m.Kind)
	}
	if err := checkFile(m.File); err != nil {
		bad("file: %v", err)
	}
	switch {
	case m.SHA256 == "" && strings.TrimSpace(m.Notes) == "":
		bad("no sha256 and no notes saying why")
	case m.SHA256 != "" && !hexSHA.MatchString(m.SHA256):
		bad("sha256 %q: want 64 lower-case hex digits", m.SHA256)
	}
	if m.Size < 0 || m.ArchiveSize < 0 {
		bad("negative size")
	}
	if m.URL != "" {
		if err := checkURL(m.URL); err != nil {
			bad("url: %v", err)
		}
	}
	if m.Member != "" && m.URL == "" {
		bad("archive member %q without an archive url", m.Member)
	}
	if m.Member != "" && (strings.HasPrefix(m.Member, "/") || path.Clean(m.Member) != m.Member) {
		bad("archive member %q is not a clean relative path", m.Member)
	}
	if m.ArchiveSHA256 != "" && !hexSHA.MatchString(m.ArchiveSHA256) {
		bad("archive sha256 %q: want 64 lower-case hex digits", m.ArchiveSHA256)
	}
	if strings.TrimSpace(m.License) == "" {
		bad("no licence")
	}
	if m.TensorsFromModel {
		if len(m.Inputs) > 0 || len(m.Outputs) > 0 {
			bad("tensors_from_model with tensor names: leave inputs and outputs empty")
		}
		if strings.TrimSpace(m.Notes) == "" {
			bad("tensors_from_model without notes saying why")
		}
	} else {
		if len(m.Inputs) == 0 || len(m.Outputs) == 0 {
			bad("no input or output tensor names")
		}
		seen := map[string]bool{}
		for _, n := range append(append([]string(nil), m.Inputs...), m.Outputs...) {
			if n == "" || seen[n] {
				bad("tensor name %q is empty or repeated", n)
			}
			seen[n] = true
		}
	}
	if m.InputWidth < 0 || m.InputHeight < 0 || (m.InputWidth == 0) != (m.InputHeight == 0) {
		bad("input size %dx%d", m.InputWidth, m.InputHeight)
	}
	if m.DynamicSize && m.InputWidth == 0 {
		bad("dynamic_size needs a default input size")
	}
	if m.ColorOrder != "RGB" && m.ColorOrder != "BGR" {
		bad("color_order %q: want RGB or BGR", m.ColorOrder)
	}
	for c, s := range m.Std {
		if !(s > 0) {
			bad("std[%d] is %v: want > 0", c, s)
		}
	}
	switch m.Crop {
	case CropLetterbox:
		if m.Kind != Detector && m.Kind != "" {
			bad("crop letterbox is for detectors")
		}
	case CropArcFace112, CropBBox:
		if m.Kind == Detector {
			bad("a detector takes the letterboxed image, not crop %s", m.Crop)
		}
	default:
		bad("crop %q: want letterbox, arcface112 or bbox", m.Crop)
	}
	switch m.Kind {
	case Detector:
		if !(m.Threshold > 0 && m.Threshold < 1) {
			bad("detection threshold %v: want in (0,1)", m.Threshold)
		}
		if !(m.NMSThreshold > 0 && m.NMSThreshold < 1) {
			bad("nms threshold %v: want in (0,1)", m.NMSThreshold)
		}
	case Recognizer:
		if m.EmbeddingDim <= 0 {
			bad("recognizer without an embedding_dim")
		}
		if !(m.Threshold > 0 && m.Threshold < 1) {
			bad("recognizer threshold %v: want a cosine similarity in (0,1)", m.Threshold)
		}
	case Emotion:
		if len(m.Labels) == 0 {
			bad("emotion model without labels")
		}
	}
	return errors.Join(errs...)
}

// checkFile accepts a clean, relative, slash-separated path to an .onnx file
// that stays inside the models directory.
func checkFile(f string) error {
	switch {
	case f == "":
		return errors.New("empty")
	case strings.HasPrefix(f, "/") || strings.Contains(f, `\`) || strings.Contains(f, ":"):
		return fmt.Errorf("%q must be a relative, slash-separated path", f)
	case path.Clean(f) != f || f == ".." || strings.HasPrefix(f, "../"):
		return fmt.Errorf("%q must be clean and stay inside the models directory", f)
	case !strings.HasSuffix(f, ".onnx"):
		return fmt.Errorf("%q is not an .onnx file", f)
	}
	return nil
}

func checkURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%q: want an absolute http(s) url", raw)
	}
	return nil
}
