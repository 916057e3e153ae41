package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/modelpack"
)

// newModelsCommand returns `facestream models list|verify|download`.
//
// The models directory and the pack come from the same settings as the
// inference binaries' (models.dir and models.pack in internal/config: flags
// --models and --model-pack, variables FACESTREAM_MODELS and
// FACESTREAM_MODEL_PACK). internal/config has no Binary for this command, so
// the two settings are read here by name from its table rather than through
// config.Load; a config.Models binary would let this use config.Load.
func newModelsCommand(getenv func(string) string) *cobra.Command {
	o := &modelsOptions{getenv: getenv}
	cmd := &cobra.Command{
		Use:   "models",
		Short: "List, verify and download model packs",
		Long: `models manages the model packs: manifests naming each model file with its sha256,
tensors, preprocessing and licence.

  models list [PACK]        the packs, their models, licences, and which files are present
  models verify [PACK]      check every file of a pack: size and sha256
  models download PACK      fetch a pack's files from their official URLs, verified

PACK defaults to the configured pack (--model-pack, FACESTREAM_MODEL_PACK); files live in
the models directory (--models, FACESTREAM_MODELS). --pack-file reads a pack from a JSON file
instead of the built-in ones.`,
		Args: cobra.NoArgs,
	}
	o.dirSetting = settingOr("models.dir", "models", "FACESTREAM_MODELS", "folder holding the model pack's files")
	o.packSetting = settingOr("models.pack", "model-pack", "FACESTREAM_MODEL_PACK", "name of the model pack to run")
	pf := cmd.PersistentFlags()
	pf.String(o.dirSetting.Flag, "", usageOf(o.dirSetting, config.Default().Models.Dir))
	pf.String(o.packSetting.Flag, "", usageOf(o.packSetting, config.Default().Models.Pack))
	pf.StringVar(&o.packFile, "pack-file", "", "read the pack from this JSON file instead of the built-in packs")

	list := &cobra.Command{
		Use:   "list [PACK]",
		Short: "List the packs: models, files, licences, commercial use, and presence in the models directory",
		Args:  cobra.MaximumNArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return o.list(cmd, args) },
	}
	verify := &cobra.Command{
		Use:   "verify [PACK]",
		Short: "Check the size and sha256 of every file of a pack",
		Args:  cobra.MaximumNArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return o.verify(cmd, args) },
	}
	verify.Flags().BoolVar(&o.tofu, "trust-on-first-use", false, "accept files whose checksum the manifest does not know, and pin their hash next to them")
	download := &cobra.Command{
		Use:   "download PACK",
		Short: "Download a pack's files from their official URLs, verified, into the models directory",
		Long: `download prints the pack's licence, then fetches every file that is missing or damaged
from its official URL (a zip archive is fetched once and only the needed members are
extracted), verifies sizes and sha256s before moving anything into place, and leaves
files that are already there alone. Running it again does nothing.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.download(cmd, args) },
	}
	download.Flags().StringVar(&o.downloadDir, "dir", "", "download into this folder instead of the models directory")
	download.Flags().BoolVar(&o.tofu, "trust-on-first-use", false, "accept files whose checksum is unknown (neither the file's nor its archive's), and pin their hash")
	cmd.AddCommand(list, verify, download)
	return cmd
}

type modelsOptions struct {
	getenv                  func(string) string
	dirSetting, packSetting config.Setting
	packFile                string
	downloadDir             string
	tofu                    bool
}

// settingOr finds a setting in internal/config's table, or describes it
// with the given names if the table no longer has it.
func settingOr(name, flag, env, help string) config.Setting {
	for _, s := range config.Settings() {
		if s.Name == name {
			return s
		}
	}
	return config.Setting{Name: name, Flag: flag, Env: env, Help: help}
}

func usageOf(s config.Setting, def string) string {
	return fmt.Sprintf("%s (env %s; default %s)", s.Help, s.Env, def)
}

// value resolves a setting: the flag if set, else the environment, else def.
func (o *modelsOptions) value(fs *pflag.FlagSet, s config.Setting, def string) string {
	if f := fs.Lookup(s.Flag); f != nil && f.Changed {
		return f.Value.String()
	}
	if v := o.getenv(s.Env); v != "" {
		return v
	}
	return def
}

func (o *modelsOptions) modelsDir(cmd *cobra.Command) string {
	return o.value(cmd.Flags(), o.dirSetting, config.Default().Models.Dir)
}

// pack returns the pack named by the argument, --pack-file, or the
// configured pack, in that order.
func (o *modelsOptions) pack(cmd *cobra.Command, args []string) (modelpack.Pack, error) {
	switch {
	case len(args) > 0 && o.packFile != "":
		return modelpack.Pack{}, errors.New("give a pack name or --pack-file, not both")
	case o.packFile != "":
		data, err := os.ReadFile(o.packFile)
		if err != nil {
			return modelpack.Pack{}, fmt.Errorf("read pack file: %w", err)
		}
		return modelpack.Parse(data)
	case len(args) > 0:
		return modelpack.Lookup(args[0])
	default:
		return modelpack.Lookup(o.value(cmd.Flags(), o.packSetting, config.Default().Models.Pack))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (o *modelsOptions) list(cmd *cobra.Command, args []string) error {
	var packs []modelpack.Pack
	if len(args) > 0 || o.packFile != "" {
		p, err := o.pack(cmd, args)
		if err != nil {
			return err
		}
		packs = []modelpack.Pack{p}
	} else {
		all, err := modelpack.Builtin()
		if err != nil {
			return err
		}
		packs = all
	}
	dir := o.modelsDir(cmd)
	configured := o.value(cmd.Flags(), o.packSetting, config.Default().Models.Pack)
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "models directory: %s\n", dir)
	for _, p := range packs {
		mark := ""
		if p.Name == configured {
			mark = " (configured)"
		}
		fmt.Fprintf(out, "\n%s%s: %s\n", p.Name, mark, p.Description)
		fmt.Fprintf(out, "  licence: %s\n", p.License)
		fmt.Fprintf(out, "  commercial use: %s\n", yesNo(p.Commercial))
		if p.URL != "" {
			fmt.Fprintf(out, "  download: %s\n", p.URL)
		}
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  KIND\tMODEL\tFILE\tSIZE\tSHA256\tCOMMERCIAL\tSTATUS\tLICENCE")
		for _, m := range p.Models {
			size, sum := "?", "unknown"
			if m.Size > 0 {
				size = humanBytes(m.Size)
			}
			if m.ChecksumKnown() {
				sum = m.SHA256[:12] + "…"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Kind, m.Name, m.File, size, sum, yesNo(m.Commercial), presence(dir, m), shorten(m.License, 60))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "\nSTATUS looks at file sizes only: `facestream models verify PACK` checks the sha256s.")
	return nil
}

// presence says whether a model file is in dir, without reading it.
func presence(dir string, m modelpack.Model) string {
	st, err := os.Stat(m.Path(dir))
	switch {
	case err != nil:
		return "missing"
	case !st.Mode().IsRegular():
		return "not a file"
	case m.Size > 0 && st.Size() != m.Size:
		return "wrong size"
	default:
		return "present"
	}
}

func shorten(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func (o *modelsOptions) verify(cmd *cobra.Command, args []string) error {
	p, err := o.pack(cmd, args)
	if err != nil {
		return err
	}
	dir := o.modelsDir(cmd)
	out := cmd.OutOrStdout()
	fmt.Fprintf(out, "verifying pack %s in %s\n", p.Name, dir)
	failed := 0
	for _, m := range p.Models {
		err := modelpack.VerifyModel(cmd.Context(), dir, m, modelpack.VerifyOptions{TrustOnFirstUse: o.tofu})
		if err != nil {
			if ctxErr := cmd.Context().Err(); ctxErr != nil {
				return ctxErr
			}
			failed++
			fmt.Fprintf(out, "FAILED  %s\n        %v\n", m.File, err)
			continue
		}
		fmt.Fprintf(out, "ok      %s\n", m.File)
	}
	if failed > 0 {
		return fmt.Errorf("verify pack %s: %d of %d files failed", p.Name, failed, len(p.Models))
	}
	fmt.Fprintf(out, "pack %s: all %d files verified\n", p.Name, len(p.Models))
	return nil
}

func (o *modelsOptions) download(cmd *cobra.Command, args []string) error {
	if len(args) == 0 && o.packFile == "" {
		return errors.New("download: name the pack to download (see `facestream models list`)")
	}
	p, err := o.pack(cmd, args)
	if err != nil {
		return err
	}
	dir := o.downloadDir
	if dir == "" {
		dir = o.modelsDir(cmd)
	}
	out := cmd.OutOrStdout()
	printLicence(out, p)
	fmt.Fprintf(out, "\ndownloading pack %s into %s\n", p.Name, dir)
	d := &modelpack.Downloader{
		Client:          downloadClient(),
		TrustOnFirstUse: o.tofu,
		Progress:        progressPrinter(cmd.ErrOrStderr()),
	}
	rep, err := d.Download(cmd.Context(), p, dir)
	for _, f := range rep.Present {
		fmt.Fprintf(out, "present  %s\n", f)
	}
	for _, f := range rep.Fetched {
		fmt.Fprintf(out, "fetched  %s\n", f)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "pack %s is ready in %s (%d fetched, %d already present), all files verified\n", p.Name, dir, len(rep.Fetched), len(rep.Present))
	return nil
}

// downloadClient has no overall timeout (a pack can be hundreds of MB; the
// command's context cancels it) but gives up on a server that does not answer.
func downloadClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	return &http.Client{Transport: t}
}

// printLicence shows the pack's and each model's licence before anything is
// fetched.
func printLicence(out io.Writer, p modelpack.Pack) {
	fmt.Fprintf(out, "%s: %s\n\n", p.Name, p.Description)
	fmt.Fprintf(out, "LICENCE: %s\n", p.License)
	fmt.Fprintf(out, "Commercial use: %s\n", yesNo(p.Commercial))
	for _, m := range p.Models {
		fmt.Fprintf(out, "  %s (%s): %s [commercial use: %s]\n", m.Name, m.Kind, m.License, yesNo(m.Commercial))
	}
}

// progressPrinter writes one line per phase and file, and one per 10 %
// step (or per 10 MB when the size is unknown).
func progressPrinter(w io.Writer) func(modelpack.Progress) {
	var last modelpack.Progress
	var lastStep int64 = -1
	return func(pr modelpack.Progress) {
		if pr.Phase == modelpack.PhaseSkip {
			return // reported in the summary
		}
		step := pr.Done / 10_000_000
		if pr.Total > 0 {
			step = pr.Done * 10 / pr.Total
		}
		if pr.Phase == last.Phase && pr.File == last.File && step == lastStep {
			return
		}
		last, lastStep = pr, step
		fmt.Fprintln(w, strings.TrimSpace(pr.String()))
	}
}

// humanBytes formats a byte count with decimal units.
func humanBytes(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
