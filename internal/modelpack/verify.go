package modelpack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Errors callers can test with errors.Is.
var (
	// ErrMissing means a model file is not in the models directory.
	ErrMissing = errors.New("model file missing")
	// ErrMismatch means a file's size or sha256 is not the manifest's.
	ErrMismatch = errors.New("checksum mismatch")
	// ErrChecksumUnknown means the manifest has no sha256 for a file and no
	// pin was recorded for it: only trust on first use can accept it.
	ErrChecksumUnknown = errors.New("checksum unknown — pass --trust-on-first-use")
)

// MismatchError says which file failed and how. It wraps ErrMismatch.
type MismatchError struct {
	File      string // as named in the manifest, or the URL of a download
	What      string // "sha256" or "size"
	Want, Got string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("verify %s: %s mismatch: expected %s, got %s", e.File, e.What, e.Want, e.Got)
}

// Unwrap makes errors.Is(err, ErrMismatch) true.
func (e *MismatchError) Unwrap() error { return ErrMismatch }

// PinSuffix names the file that records, next to a model whose manifest has
// no sha256, the hash accepted on first use (or taken from a verified
// archive). It is in sha256sum's format, so `sha256sum -c` reads it.
const PinSuffix = ".sha256"

// VerifyOptions tune VerifyModel and VerifyPack.
type VerifyOptions struct {
	// TrustOnFirstUse accepts a file whose checksum the manifest does not
	// know and that has no pin yet, and records its hash as the pin.
	TrustOnFirstUse bool
	// Progress, when set, is called as a file is hashed.
	Progress func(file string, done, total int64)
}

// Verify checks every model file of the pack under dir: present, of the
// manifest's size, and of its sha256 (each file is read in a stream and
// hashed at most once per process while it is unchanged). All failures are
// reported, joined; each names the file, and mismatches give expected and
// got. A file without a known checksum fails with ErrChecksumUnknown unless
// a pin was recorded (see VerifyOptions.TrustOnFirstUse).
func (p Pack) Verify(dir string) error {
	return VerifyPack(context.Background(), p, dir, VerifyOptions{})
}

// VerifyPack is Pack.Verify with a context and options.
func VerifyPack(ctx context.Context, p Pack, dir string, opts VerifyOptions) error {
	var errs []error
	for _, m := range p.Models {
		if err := VerifyModel(ctx, dir, m, opts); err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// VerifiedPath verifies m's file under dir (once per process while the file
// is unchanged) and returns its path: the helper to call before loading a
// model.
func VerifiedPath(ctx context.Context, dir string, m Model) (string, error) {
	if err := VerifyModel(ctx, dir, m, VerifyOptions{}); err != nil {
		return "", err
	}
	return m.Path(dir), nil
}

// Present reports, without reading it, whether m's file is in dir as a
// regular file of the manifest's size (any size when the size is unknown).
func (m Model) Present(dir string) bool {
	st, err := os.Stat(m.Path(dir))
	return err == nil && st.Mode().IsRegular() && (m.Size == 0 || st.Size() == m.Size)
}

// VerifyModel checks one model file under dir; see Pack.Verify.
func VerifyModel(ctx context.Context, dir string, m Model, opts VerifyOptions) error {
	path := m.Path(dir)
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("verify %s: %w in %s", m.File, ErrMissing, dir)
	}
	if err != nil {
		return fmt.Errorf("verify %s: %w", m.File, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("verify %s: not a regular file", m.File)
	}
	if m.Size > 0 && st.Size() != m.Size {
		return &MismatchError{File: m.File, What: "size", Want: fmt.Sprint(m.Size), Got: fmt.Sprint(st.Size())}
	}
	want, pinned := m.SHA256, false
	if want == "" {
		pin, err := readPin(path)
		switch {
		case err == nil:
			want, pinned = pin, true
		case !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("verify %s: %w", m.File, err)
		case !opts.TrustOnFirstUse:
			return fmt.Errorf("verify %s: %w", m.File, ErrChecksumUnknown)
		}
	}
	var progress func(done, total int64)
	if opts.Progress != nil {
		progress = func(done, total int64) { opts.Progress(m.File, done, total) }
	}
	got, err := sums.sum(ctx, path, progress)
	if err != nil {
		return fmt.Errorf("verify %s: %w", m.File, err)
	}
	if want == "" { // trust on first use
		if err := writePin(path, got); err != nil {
			return fmt.Errorf("verify %s: %w", m.File, err)
		}
		return nil
	}
	if got != want {
		e := &MismatchError{File: m.File, What: "sha256", Want: want, Got: got}
		if pinned {
			e.Want += " (pinned on first use in " + filepath.Base(path) + PinSuffix + ")"
		}
		return e
	}
	return nil
}

func readPin(modelPath string) (string, error) {
	data, err := os.ReadFile(modelPath + PinSuffix)
	if err != nil {
		return "", err
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 || !hexSHA.MatchString(fields[0]) {
		return "", fmt.Errorf("read pin %s: not a sha256 line", modelPath+PinSuffix)
	}
	return fields[0], nil
}

// writePin records sum for the file at modelPath, atomically.
func writePin(modelPath, sum string) error {
	line := sum + "  " + filepath.Base(modelPath) + "\n"
	return writeFileAtomic(modelPath+PinSuffix, strings.NewReader(line))
}

// writeFileAtomic writes r to a temporary file next to path, syncs it and
// renames it into place, so readers see the old file or the whole new one.
func writeFileAtomic(path string, r io.Reader) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".part-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = io.Copy(tmp, r); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// sums caches the sha256 of files already hashed in this process, keyed by
// what identifies an unchanged file (path, device, inode, size, mtime and
// ctime, which any write or rename updates), so a model is hashed once
// however many times it is loaded or verified. It is a pure cache: it never
// changes an answer, only saves recomputing it.
var sums = &sumCache{entries: map[fileKey]*sumEntry{}}

type fileKey struct {
	path             string
	dev, ino         uint64
	size, mtim, ctim int64
}

type sumEntry struct {
	ready chan struct{} // closed when sum or err is set
	sum   string
	err   error
}

type sumCache struct {
	mu      sync.Mutex
	entries map[fileKey]*sumEntry
	hashed  int // files read and hashed (for tests)
}

func keyOf(path string, st os.FileInfo) fileKey {
	k := fileKey{path: path, size: st.Size(), mtim: st.ModTime().UnixNano()}
	statKey(&k, st)
	return k
}

// sum returns the file's sha256, hashing it only if no unchanged copy was
// hashed before; concurrent callers for one file share one read.
func (c *sumCache) sum(ctx context.Context, path string, progress func(done, total int64)) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	key := keyOf(abs, st)
	c.mu.Lock()
	e, ok := c.entries[key]
	if !ok {
		e = &sumEntry{ready: make(chan struct{})}
		c.entries[key] = e
	}
	c.mu.Unlock()
	if ok {
		select {
		case <-e.ready:
			if e.err == nil {
				return e.sum, nil
			}
			return c.sum(ctx, path, progress) // the earlier read failed: retry
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	e.sum, e.err = hashFile(ctx, abs, st.Size(), progress)
	c.mu.Lock()
	c.hashed++
	if e.err != nil {
		delete(c.entries, key) // do not cache failures
	}
	c.mu.Unlock()
	close(e.ready)
	return e.sum, e.err
}

// remember records a sum computed while writing path (by Download), so the
// file it just verified is not read again.
func (c *sumCache) remember(path, sum string) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return
	}
	st, err := os.Stat(abs)
	if err != nil {
		return
	}
	e := &sumEntry{ready: make(chan struct{}), sum: sum}
	close(e.ready)
	c.mu.Lock()
	c.entries[keyOf(abs, st)] = e
	c.mu.Unlock()
}

// hashFile reads the file in a stream, checking ctx between chunks.
func hashFile(ctx context.Context, path string, size int64, progress func(done, total int64)) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	var done int64
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		done += int64(n)
		if progress != nil && n > 0 {
			progress(done, size)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
