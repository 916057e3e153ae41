package modelpack

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Progress reports what Download is doing.
type Progress struct {
	Model string // the model concerned; empty while an archive downloads
	File  string // the model file, or the archive's name while it downloads
	Phase string // PhaseSkip, PhaseDownload or PhaseExtract
	Done  int64  // bytes so far
	Total int64  // bytes expected; 0 when unknown
}

// Download phases.
const (
	PhaseSkip     = "present" // already there and verified
	PhaseDownload = "download"
	PhaseExtract  = "extract"
)

// Report says what Download did.
type Report struct {
	Fetched []string // model files written
	Present []string // model files already there and verified
}

// Downloader fetches a pack's model files from their official URLs.
type Downloader struct {
	// Client makes the requests; nil means http.DefaultClient.
	Client *http.Client
	// Progress, when set, is called as bytes arrive.
	Progress func(Progress)
	// TrustOnFirstUse accepts files whose checksum is unknown (neither the
	// file's nor its archive's sha256 is in the manifest) and pins their hash.
	TrustOnFirstUse bool
}

// Download fetches the pack's missing or damaged model files into dir with
// client (nil: http.DefaultClient). See Downloader.Download.
func Download(ctx context.Context, p Pack, dir string, client *http.Client) (Report, error) {
	return (&Downloader{Client: client}).Download(ctx, p, dir)
}

// Download makes every model file of the pack present and verified under
// dir. Files already there and verified are left alone (so a second call
// does nothing). Each missing one is fetched from its URL: a file directly,
// or the named member of a zip archive (each archive is fetched once for all
// the models it holds). Everything is verified before it is moved into
// place: the archive's sha256, then each file's size and sha256; a file
// whose own checksum is unknown but whose archive was verified gets its hash
// pinned next to it. Data is written to temporary files in dir and renamed
// into place, so a failure or a cancelled ctx never leaves a partial or
// unverified model file behind.
func (d *Downloader) Download(ctx context.Context, p Pack, dir string) (Report, error) {
	var rep Report
	if err := p.Validate(); err != nil {
		return rep, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return rep, fmt.Errorf("download %s: %w", p.Name, err)
	}

	var need []Model
	var problems []error
	for _, m := range p.Models {
		err := VerifyModel(ctx, dir, m, VerifyOptions{})
		if errors.Is(err, ErrChecksumUnknown) && d.TrustOnFirstUse {
			err = VerifyModel(ctx, dir, m, VerifyOptions{TrustOnFirstUse: true})
		}
		if err == nil {
			rep.Present = append(rep.Present, m.File)
			d.report(Progress{Model: m.Name, File: m.File, Phase: PhaseSkip, Done: m.Size, Total: m.Size})
			continue
		}
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		switch {
		case m.URL == "":
			problems = append(problems, fmt.Errorf("download %s: model %s has no download url (%v): copy %s into %s by hand", p.Name, m.Name, err, m.File, dir))
		case m.SHA256 == "" && p.archiveSHA256(m) == "" && !d.TrustOnFirstUse:
			problems = append(problems, fmt.Errorf("download %s: model %s: neither the file's nor its archive's sha256 is known: %w", p.Name, m.Name, ErrChecksumUnknown))
		default:
			need = append(need, m)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return rep, err
	}

	// One fetch per URL, in manifest order.
	var urls []string
	byURL := map[string][]Model{}
	for _, m := range need {
		if _, ok := byURL[m.URL]; !ok {
			urls = append(urls, m.URL)
		}
		byURL[m.URL] = append(byURL[m.URL], m)
	}
	for _, u := range urls {
		group := byURL[u]
		var err error
		if group[0].Member == "" {
			err = d.fetchFile(ctx, dir, group[0])
		} else {
			err = d.fetchArchive(ctx, p, dir, u, group)
		}
		if err != nil {
			return rep, fmt.Errorf("download %s: %w", p.Name, err)
		}
		for _, m := range group {
			rep.Fetched = append(rep.Fetched, m.File)
		}
	}
	return rep, nil
}

// archiveSHA256 is the known checksum of the archive m is extracted from.
func (p Pack) archiveSHA256(m Model) string {
	if m.ArchiveSHA256 != "" {
		return m.ArchiveSHA256
	}
	if m.Member != "" && m.URL == p.URL {
		return p.SHA256
	}
	return ""
}

func (p Pack) archiveSize(m Model) int64 {
	if m.ArchiveSize > 0 {
		return m.ArchiveSize
	}
	if m.Member != "" && m.URL == p.URL {
		return p.ArchiveSize
	}
	return 0
}

func (d *Downloader) report(pr Progress) {
	if d.Progress != nil {
		d.Progress(pr)
	}
}

func (d *Downloader) get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", url, err)
	}
	client := d.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err // a *url.Error: it names the method and the url
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return resp, nil
}

// fetchFile downloads a model that is a file of its own.
func (d *Downloader) fetchFile(ctx context.Context, dir string, m Model) error {
	resp, err := d.get(ctx, m.URL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if m.Size > 0 && resp.ContentLength >= 0 && resp.ContentLength != m.Size {
		return &MismatchError{File: m.URL, What: "size", Want: fmt.Sprint(m.Size), Got: fmt.Sprint(resp.ContentLength)}
	}
	total := m.Size
	if total == 0 && resp.ContentLength > 0 {
		total = resp.ContentLength
	}
	body := &progressReader{r: resp.Body, total: total, report: func(done, total int64) {
		d.report(Progress{Model: m.Name, File: m.File, Phase: PhaseDownload, Done: done, Total: total})
	}}
	return d.place(dir, m, &ctxReader{ctx: ctx, r: body}, m.SHA256 == "")
}

// fetchArchive downloads a zip once, verifies it, and extracts the members
// the models name.
func (d *Downloader) fetchArchive(ctx context.Context, p Pack, dir, url string, group []Model) error {
	wantSHA, wantSize := p.archiveSHA256(group[0]), p.archiveSize(group[0])
	name := path.Base(url)
	resp, err := d.get(ctx, url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if wantSize > 0 && resp.ContentLength >= 0 && resp.ContentLength != wantSize {
		return &MismatchError{File: url, What: "size", Want: fmt.Sprint(wantSize), Got: fmt.Sprint(resp.ContentLength)}
	}
	total := wantSize
	if total == 0 && resp.ContentLength > 0 {
		total = resp.ContentLength
	}
	tmp, err := os.CreateTemp(dir, ".download-*-"+name)
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // the archive itself is never kept
	defer tmp.Close()
	h := sha256.New()
	body := &progressReader{r: resp.Body, total: total, report: func(done, total int64) {
		d.report(Progress{File: name, Phase: PhaseDownload, Done: done, Total: total})
	}}
	src := io.Reader(body)
	if wantSize > 0 {
		src = io.LimitReader(body, wantSize+1) // a longer body fails the size check below
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), &ctxReader{ctx: ctx, r: src})
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	if wantSize > 0 && n != wantSize {
		return &MismatchError{File: url, What: "size", Want: fmt.Sprint(wantSize), Got: fmt.Sprint(n)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); wantSHA != "" && got != wantSHA {
		return &MismatchError{File: url, What: "sha256", Want: wantSHA, Got: got}
	}

	zr, err := zip.NewReader(tmp, n)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	for _, m := range group {
		if err := ctx.Err(); err != nil {
			return err
		}
		f, err := findMember(zr, m.Member)
		if err != nil {
			return fmt.Errorf("extract %s from %s: %w", m.File, name, err)
		}
		if m.Size > 0 && f.UncompressedSize64 != uint64(m.Size) {
			return &MismatchError{File: name + ":" + f.Name, What: "size", Want: fmt.Sprint(m.Size), Got: fmt.Sprint(f.UncompressedSize64)}
		}
		rc, err := f.Open()
		if err != nil {
			return fmt.Errorf("extract %s from %s: %w", m.File, name, err)
		}
		body := &progressReader{r: rc, total: int64(f.UncompressedSize64), report: func(done, total int64) {
			d.report(Progress{Model: m.Name, File: m.File, Phase: PhaseExtract, Done: done, Total: total})
		}}
		// A member without its own checksum is trusted through the
		// archive's (or, without one, on first use) and pinned.
		err = d.place(dir, m, &ctxReader{ctx: ctx, r: body}, m.SHA256 == "")
		rc.Close()
		if err != nil {
			return fmt.Errorf("extract %s from %s: %w", m.File, name, err)
		}
	}
	return nil
}

// findMember returns the archive entry named name or, when the archive
// keeps its files in another folder than the manifest says (layouts differ
// between InsightFace packs), the one entry with the same base name. The
// content is checked against the manifest's checksum either way.
func findMember(zr *zip.Reader, name string) (*zip.File, error) {
	var same []*zip.File
	for _, f := range zr.File {
		if f.Name == name {
			return f, nil
		}
		if !f.FileInfo().IsDir() && path.Base(f.Name) == path.Base(name) {
			same = append(same, f)
		}
	}
	if len(same) == 1 {
		return same[0], nil
	}
	return nil, fmt.Errorf("no member %s in the archive (%d entries)", name, len(zr.File))
}

// maxUnknownSize bounds a file whose size the manifest does not give.
const maxUnknownSize = 4 << 30

// place streams r into a temporary file next to m's path, checks its size
// and sha256 against the manifest, and renames it into place; on any
// failure the temporary file is removed. With pin set (no sha256 in the
// manifest) the hash is recorded next to the file instead.
func (d *Downloader) place(dir string, m Model, r io.Reader, pin bool) (err error) {
	target := m.Path(dir)
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".part-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	limit := int64(maxUnknownSize)
	if m.Size > 0 {
		limit = m.Size + 1
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, limit))
	if err != nil {
		return err
	}
	if (m.Size > 0 && n != m.Size) || n >= maxUnknownSize {
		return &MismatchError{File: m.File, What: "size", Want: fmt.Sprint(m.Size), Got: fmt.Sprint(n)}
	}
	sum := hexSum(h)
	if !pin && sum != m.SHA256 {
		return &MismatchError{File: m.File, What: "sha256", Want: m.SHA256, Got: sum}
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if pin {
		if err = writePin(target, sum); err != nil {
			return err
		}
	}
	if err = os.Rename(tmp.Name(), target); err != nil {
		return err
	}
	sums.remember(target, sum)
	return nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// progressReader reports bytes read: on the first bytes, then every 1 MiB,
// and at the end.
type progressReader struct {
	r           io.Reader
	total, done int64
	last        int64
	report      func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.report != nil && p.done != p.last && (p.last == 0 || p.done-p.last >= 1<<20 || err == io.EOF) {
		p.last = p.done
		p.report(p.done, p.total)
	}
	return n, err
}

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// String names the phase for people.
func (pr Progress) String() string {
	var b strings.Builder
	b.WriteString(pr.Phase)
	b.WriteString(" ")
	b.WriteString(pr.File)
	if pr.Total > 0 {
		fmt.Fprintf(&b, " %d%% (%s of %s)", pr.Done*100/pr.Total, human(pr.Done), human(pr.Total))
	} else if pr.Done > 0 {
		fmt.Fprintf(&b, " %s", human(pr.Done))
	}
	return b.String()
}

// human formats a byte count as B, KB, MB or GB (powers of 1000).
func human(n int64) string {
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
