package modelpack

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// The built-in packs, one JSON file each (packs/<name>.json):
//
//   - dev: the models in ../shared/models, for development and CI. Its
//     recognizer threshold (0.46) was measured on the labelled pairs of
//     ../shared/testdata (docs/face-engine.md, internal/face tests); whoever
//     measures it again sets it here (the JSON's notes say where it comes from).
//   - dev-yunet: dev with the YuNet detector (MIT/Apache-2.0) instead of SCRFD;
//     the same recognizer, so the same threshold.
//   - buffalo_l, buffalo_m, buffalo_s, buffalo_sc, antelopev2: InsightFace's
//     model-zoo packs, downloaded from their official v0.7 release archives.
//     Their weights are for non-commercial research only.
//
//go:embed packs/*.json
var packFS embed.FS

// DefaultPack is the pack used when none is configured.
const DefaultPack = "dev"

// ErrUnknownPack means no built-in pack has the requested name.
var ErrUnknownPack = errors.New("unknown model pack")

// Builtin returns every built-in pack, sorted by name. Each call parses the
// embedded JSON afresh, so callers may modify what they get.
func Builtin() ([]Pack, error) {
	entries, err := fs.ReadDir(packFS, "packs")
	if err != nil {
		return nil, fmt.Errorf("read built-in packs: %w", err)
	}
	var packs []Pack
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := packFS.ReadFile(path.Join("packs", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read built-in pack %s: %w", e.Name(), err)
		}
		p, err := Parse(data)
		if err != nil {
			return nil, fmt.Errorf("built-in pack %s: %w", e.Name(), err)
		}
		if want := strings.TrimSuffix(e.Name(), ".json"); p.Name != want {
			return nil, fmt.Errorf("built-in pack %s is named %q, want %q: %w", e.Name(), p.Name, want, ErrInvalid)
		}
		packs = append(packs, p)
	}
	sort.Slice(packs, func(i, j int) bool { return packs[i].Name < packs[j].Name })
	return packs, nil
}

// Names lists the built-in packs' names, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(packFS, "packs")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// Lookup returns the built-in pack with the given name; the error wraps
// ErrUnknownPack and lists the names there are.
func Lookup(name string) (Pack, error) {
	var data []byte
	err := ErrUnknownPack
	if name != "" && !strings.ContainsAny(name, `/\`) {
		data, err = packFS.ReadFile(path.Join("packs", name+".json"))
	}
	if err != nil {
		return Pack{}, fmt.Errorf("model pack %q: %w (built-in: %s)", name, ErrUnknownPack, strings.Join(Names(), ", "))
	}
	p, err := Parse(data)
	if err != nil {
		return Pack{}, fmt.Errorf("built-in pack %s: %w", name, err)
	}
	return p, nil
}
