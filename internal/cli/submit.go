package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/service"
	fsnats "github.com/facestream/facestream/nats"
	"github.com/facestream/facestream/pkg/events"
)

// imageExts are the file extensions submit picks up in folders.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".webp": true, ".bmp": true, ".tif": true, ".tiff": true}

// submitSettings are the internal/config settings submit offers as flags.
// config has no Binary for submit: it loads them as the ingest binary does
// (the other producer-facing binary), so each comes with its environment
// variable, default and validation from the one table.
var submitSettings = []string{"nats.url", "nats.creds", "nats.tls_ca", "nats.tls_cert", "nats.tls_key", "limits.inline_payload_max"}

type submitOptions struct {
	getenv  func(string) string
	timeout time.Duration
	tenant  string
	pack    string
}

// newSubmitCommand returns `facestream submit FILES|DIR...`.
func newSubmitCommand(getenv func(string) string) *cobra.Command {
	o := &submitOptions{getenv: getenv}
	cmd := &cobra.Command{
		Use:   "submit FILE|DIR...",
		Short: "Submit images to the pipeline and print each result as it arrives",
		Long: `submit publishes every image file named (folders are walked recursively for .jpg, .jpeg,
.png, .webp, .bmp and .tiff files) as an image.submitted event, each under a fresh image id;
images above --inline-payload-max go to the object store and travel by reference. A progress
bar counts the results; each result (image.analyzed or image.rejected, read from the results
stream and matched by image id) is printed as it arrives. It exits non-zero when some result
did not arrive within --timeout.`,
		Args: cobra.MinimumNArgs(1),
	}
	f := cmd.Flags()
	all := pflag.NewFlagSet("ingest", pflag.ContinueOnError)
	config.AddFlags(all, config.Ingest)
	for _, name := range submitSettings {
		if fl := all.Lookup(settingOr(name, "", "", "").Flag); fl != nil {
			f.AddFlag(fl)
		}
	}
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for all results")
	f.StringVar(&o.tenant, "tenant", "", "tenant of the images (empty: the default tenant)")
	f.StringVar(&o.pack, "pack", "", "model pack to analyse with (empty: the service's)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error { return o.run(cmd, args) }
	return cmd
}

// pending is a submitted image waiting for its result.
type pending struct {
	path string
}

func (o *submitOptions) run(cmd *cobra.Command, args []string) error {
	cfg, err := config.Load(config.Ingest, cmd.Flags(), o.getenv)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	files, err := collectImages(args)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("submit: no image files found")
	}
	out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
	ctx, cancel := context.WithTimeout(cmd.Context(), o.timeout)
	defer cancel()

	logger := slog.New(slog.DiscardHandler)
	nc, err := service.Connect(cfg.NATS, "facestream-submit", logger)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	// Listen before publishing so that no result is missed.
	results, err := js.OrderedConsumer(ctx, fsnats.StreamResults, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{events.SubjectImageAnalyzed + ".>", events.SubjectImageRejected + ".>"},
		DeliverPolicy:  jetstream.DeliverNewPolicy,
	})
	if err != nil {
		return fmt.Errorf("submit: read results (is 'facestream run' running?): %w", err)
	}
	iter, err := results.Messages()
	if err != nil {
		return fmt.Errorf("submit: read results: %w", err)
	}
	defer iter.Stop()
	context.AfterFunc(ctx, iter.Stop)

	pub, err := events.NewPublisher(js, events.WithSource("/facestream/submit"))
	if err != nil {
		return fmt.Errorf("submit: %w", err)
	}
	blobs := events.NewBlobStore(js)
	waiting := map[string]pending{}
	bar := progressbar.NewOptions(len(files),
		progressbar.OptionSetWriter(errw),
		progressbar.OptionSetDescription("analysing"),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(false),
		progressbar.OptionClearOnFinish(),
	)
	for _, path := range files {
		id, err := o.submit(ctx, pub, blobs, int(cfg.Limits.InlinePayloadMax), path)
		if err != nil {
			return err
		}
		waiting[id] = pending{path: path}
	}
	for len(waiting) > 0 {
		msg, err := iter.Next()
		if err != nil {
			break
		}
		e, err := events.Decode(&nats.Msg{Subject: msg.Subject(), Header: msg.Headers(), Data: msg.Data()})
		if err != nil {
			continue
		}
		p, ok := waiting[e.ImageID()]
		if !ok {
			continue
		}
		delete(waiting, e.ImageID())
		_ = bar.Clear()
		fmt.Fprintln(out, describe(p.path, e))
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	if len(waiting) > 0 {
		var missing []string
		for _, p := range waiting {
			missing = append(missing, p.path)
		}
		sort.Strings(missing)
		return fmt.Errorf("submit: no result within %v for %d image(s): %s", o.timeout, len(missing), strings.Join(missing, ", "))
	}
	return nil
}

// submit publishes one file and returns its image id.
func (o *submitOptions) submit(ctx context.Context, pub *events.Publisher, blobs *events.BlobStore, inlineMax int, path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("submit: %w", err)
	}
	id := uuid.NewString()
	s := events.Submission{ImageID: id, Tenant: o.tenant, Options: events.RequestOptions{Pack: o.pack}}
	ct := http.DetectContentType(data)
	if len(data) > inlineMax {
		ref, err := blobs.Put(ctx, "facestream-images", "submitted/"+id, ct, data)
		if err != nil {
			return "", fmt.Errorf("submit %s: %w", path, err)
		}
		s.Ref = &ref
	} else {
		s.Image, s.ContentType = data, ct
	}
	e, err := events.NewImageSubmitted(s)
	if err != nil {
		return "", fmt.Errorf("submit %s: %w", path, err)
	}
	// The queue of new images is bounded (nats.work_max_per_stage): while it
	// is full, wait for the pipeline to make room instead of failing.
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		_, err := pub.Publish(ctx, e)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, events.ErrStreamFull) {
			return "", fmt.Errorf("submit %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("submit %s: %w", path, err)
		case <-time.After(wait):
		}
	}
}

// describe renders one result as a line.
func describe(path string, e events.Event) string {
	switch e.CloudEvent.Type() {
	case events.TypeImageRejected:
		var r events.ImageRejected
		if err := e.Decode(&r); err != nil {
			return fmt.Sprintf("%s: rejected (unreadable result: %v)", path, err)
		}
		return fmt.Sprintf("%s: rejected by %s: %s (%s)", path, r.Stage, r.Reason, r.Message)
	case events.TypeImageAnalyzed:
		var a events.ImageAnalyzed
		if err := e.Decode(&a); err != nil {
			return fmt.Sprintf("%s: analysed (unreadable result: %v)", path, err)
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s: %d face(s)", path, len(a.Faces))
		if a.Cached {
			b.WriteString(" (cached)")
		}
		for _, f := range a.Faces {
			fmt.Fprintf(&b, "\n  face %d: box [%.0f %.0f %.0f %.0f] score %.2f", f.Index, f.Box[0], f.Box[1], f.Box[2], f.Box[3], f.Score)
			if at := f.Attributes; at != nil {
				if at.Gender != nil {
					fmt.Fprintf(&b, ", %s", at.Gender.Label)
				}
				if at.Age != nil {
					fmt.Fprintf(&b, ", age %.0f", *at.Age)
				}
				if at.Emotion != nil {
					fmt.Fprintf(&b, ", %s", at.Emotion.Label)
				}
				if q := at.Quality; q != nil && !q.Usable {
					fmt.Fprintf(&b, ", not usable (%s)", q.Reason)
				}
			}
			if f.Match != nil {
				fmt.Fprintf(&b, ", matches %s (%.2f)", cmpOr(f.Match.SubjectName, f.Match.SubjectID), f.Match.Similarity)
			}
		}
		return b.String()
	}
	return fmt.Sprintf("%s: %s", path, e.CloudEvent.Type())
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// collectImages expands the arguments: files as given, folders walked for
// image files, in a stable order.
func collectImages(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("submit: %w", err)
		}
		if !st.IsDir() {
			out = append(out, a)
			continue
		}
		err = filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && imageExts[strings.ToLower(filepath.Ext(p))] {
				out = append(out, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("submit: %w", err)
		}
	}
	return out, nil
}
