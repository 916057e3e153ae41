package onnx

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCloseWaitsForRunsInFlight holds a run inside the session (through the
// test-only runHook, after Run has taken the session's read lock) and calls
// Close: Close must not return while that run is in flight, the run must
// then complete normally, and the next run must fail with ErrClosed.
func TestCloseWaitsForRunsInFlight(t *testing.T) {
	lib, models := os.Getenv("FACESTREAM_ORT_LIB"), os.Getenv("FACESTREAM_MODELS")
	if lib == "" || models == "" {
		t.Fatal("FACESTREAM_ORT_LIB and FACESTREAM_MODELS must be set: run the tests through `make test`")
	}
	rt, err := Open(RuntimeConfig{LibraryPath: lib})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	s, err := rt.NewSession(filepath.Join(models, "mobilefacenet-foamliu/mobilefacenet_dynbatch_opset11.onnx"), SessionConfig{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	s.runHook = func() {
		s.runHook = nil // only the first run waits; Close holds the lock from here on
		close(entered)
		<-release
	}
	runErr := make(chan error, 1)
	go func() {
		out, err := s.Run(NewTensor(1, 3, 112, 112))
		if err == nil && len(out) != 1 {
			err = errors.New("run returned no output")
		}
		runErr <- err
	}()
	<-entered

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	// Close must still be waiting. (A wait that is too short can only let a
	// broken Close pass, never fail a correct one.)
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while a run was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-runErr; err != nil {
		t.Fatalf("the run in flight failed: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Run(NewTensor(1, 3, 112, 112)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v, want ErrClosed", err)
	}
}
