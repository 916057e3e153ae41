package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// remoteFlags select a running server for analyze, compare, search and
// subjects: --server URL (or FACESTREAM_SERVER), the key from
// FACESTREAM_API_KEY or --api-key-file.
type remoteFlags struct {
	server  string
	keyFile string
	timeout time.Duration
}

func (f *remoteFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&f.server, "server", "", "URL of a running facestream HTTP API, e.g. http://127.0.0.1:8080 (env FACESTREAM_SERVER); without it the command works locally")
	fs.StringVar(&f.keyFile, "api-key-file", "", "file holding the API key (default: env FACESTREAM_API_KEY)")
	fs.DurationVar(&f.timeout, "http-timeout", 2*time.Minute, "timeout of each HTTP request to --server")
}

// client talks to the HTTP API.
type client struct {
	base string
	key  string
	hc   *http.Client
}

// remote returns the client of f, or nil when no server is set.
func (f *remoteFlags) remote(getenv func(string) string) (*client, error) {
	server := f.server
	if server == "" {
		server = getenv("FACESTREAM_SERVER")
	}
	if server == "" {
		return nil, nil
	}
	key := getenv("FACESTREAM_API_KEY")
	if f.keyFile != "" {
		b, err := os.ReadFile(f.keyFile)
		if err != nil {
			return nil, fmt.Errorf("read the API key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" {
		return nil, errors.New("no API key: set FACESTREAM_API_KEY or --api-key-file (create one with 'facestream keys create')")
	}
	return &client{base: strings.TrimRight(server, "/"), key: key, hc: &http.Client{Timeout: f.timeout}}, nil
}

// file is one upload: form field and path.
type file struct{ field, path string }

// do sends a JSON body (files empty) or a multipart form of files with the
// JSON fields of body, and decodes the answer into out. A problem answer is
// an error naming its status, code and detail.
func (c *client) do(ctx context.Context, method, path string, body any, files []file, out any) error {
	var (
		rd io.Reader
		ct string
	)
	switch {
	case len(files) > 0:
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		if body != nil {
			b, err := json.Marshal(body)
			if err != nil {
				return err
			}
			if err := mw.WriteField("request", string(b)); err != nil {
				return err
			}
		}
		for _, f := range files {
			data, err := os.ReadFile(f.path)
			if err != nil {
				return err
			}
			w, err := mw.CreateFormFile(f.field, filepath.Base(f.path))
			if err != nil {
				return err
			}
			if _, err := w.Write(data); err != nil {
				return err
			}
		}
		if err := mw.Close(); err != nil {
			return err
		}
		rd, ct = &buf, mw.FormDataContentType()
	case body != nil:
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd, ct = bytes.NewReader(b), "application/json"
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode >= 400 {
		var p struct {
			Code, Detail, Reason string
		}
		if json.Unmarshal(data, &p) == nil && p.Code != "" {
			msg := fmt.Sprintf("%s %s: HTTP %d %s: %s", method, path, resp.StatusCode, p.Code, p.Detail)
			if p.Reason != "" {
				msg += " (" + p.Reason + ")"
			}
			return errors.New(msg)
		}
		return fmt.Errorf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	if out == nil || len(data) == 0 {
		return nil
	}
	return json.Unmarshal(data, out)
}

// printJSON writes v as one JSON line (indented with pretty).
func printJSON(w io.Writer, v any, pretty bool) error {
	enc := json.NewEncoder(w)
	if pretty {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// needRemote is the error of a subcommand that only works against a server.
func needRemote(what string) error {
	return fmt.Errorf("%s needs a running server: pass --server URL (or set FACESTREAM_SERVER) and an API key", what)
}

// analyzeRemote sends each image to POST /v1/analyze and prints one JSON
// object per image and line ({"file", "result"} or {"file", "error"}).
func analyzeRemote(ctx context.Context, s Streams, c *client, f analyzeFlags, files []string) error {
	failed := 0
	for _, path := range files {
		if err := ctx.Err(); err != nil {
			return err
		}
		body := map[string]any{}
		if f.maxFaces > 0 {
			body["options"] = map[string]any{"max_faces": f.maxFaces}
		}
		var out json.RawMessage
		rec := map[string]any{"file": path}
		if err := c.do(ctx, "POST", "/v1/analyze", body, []file{{"image", path}}, &out); err != nil {
			rec["error"] = err.Error()
			failed++
		} else {
			rec["result"] = out
		}
		if err := printJSON(s.Out, rec, f.pretty); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("analyze: %d of %d images failed (see their \"error\")", failed, len(files))
	}
	return nil
}
