package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readyTimeout bounds how long a server may take to accept connections.
const readyTimeout = 10 * time.Second

// Server is an in-process nats-server with JetStream and a connected client.
//
// Conn and JS are safe for concurrent use, as always in nats.go. Restart and
// Shutdown may be called from any goroutine, but not concurrently with each
// other.
type Server struct {
	// URL is the client URL (nats://127.0.0.1:port). It stays the same
	// across Restart.
	URL string
	// StoreDir is the JetStream store directory, a t.TempDir().
	StoreDir string
	// Conn is a client connection that reconnects on its own across Restart.
	Conn *nats.Conn
	// JS is the JetStream handle over Conn.
	JS jetstream.JetStream

	t    testing.TB
	opts server.Options

	mu    sync.Mutex
	srv   *server.Server
	conns []*nats.Conn
}

// Option changes the server's options before it starts.
type Option func(*server.Options)

// WithMaxPayload sets the server's max_payload (1 MB by default). The
// all-in-one facestream server runs with a larger one.
func WithMaxPayload(n int32) Option {
	return func(o *server.Options) { o.MaxPayload = n }
}

// Start starts a JetStream-enabled server on a random loopback port with a
// temporary store, connects a client to it and registers the shutdown of
// both with t.Cleanup. It fails the test if anything does not start.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{t: t, opts: o, StoreDir: o.StoreDir}
	srv, err := startServer(&s.opts)
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	s.srv = srv
	// Pin the random port so that Restart comes back on the same address
	// and connected clients find it again.
	addr, ok := srv.Addr().(*net.TCPAddr)
	if !ok {
		srv.Shutdown()
		t.Fatalf("natstest: unexpected listener address %v", srv.Addr())
	}
	s.opts.Port = addr.Port
	s.URL = srv.ClientURL()
	t.Cleanup(s.Shutdown)

	s.Conn, s.JS = s.Connect()
	return s
}

// Connect opens another client connection to the server, closed in
// t.Cleanup. Like Conn, it retries forever across Restart.
func (s *Server) Connect() (*nats.Conn, jetstream.JetStream) {
	s.t.Helper()
	nc, err := nats.Connect(s.URL,
		nats.Name(s.t.Name()),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(25*time.Millisecond),
		nats.ReconnectJitter(0, 0),
	)
	if err != nil {
		s.t.Fatalf("natstest: connect to %s: %v", s.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		s.t.Fatalf("natstest: jetstream: %v", err)
	}
	s.mu.Lock()
	s.conns = append(s.conns, nc)
	s.mu.Unlock()
	return nc, js
}

// NATS returns the running nats-server, for tests that need its monitoring
// or options. It changes on Restart.
func (s *Server) NATS() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Restart shuts the server down and starts a new one on the same port with
// the same store directory, then waits until the original client connection
// has reconnected. It fails the test if the server does not come back.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.StartAgain()
}

// Stop shuts the server down and waits until it is gone, leaving the store
// directory and the clients in place; the clients keep trying to reconnect.
// Use StartAgain to bring it back.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// StartAgain starts a stopped server on its old port and store directory and
// waits until Conn has reconnected.
func (s *Server) StartAgain() {
	s.t.Helper()
	s.mu.Lock()
	if s.srv != nil {
		s.mu.Unlock()
		s.t.Fatalf("natstest: server is already running")
	}
	opts := s.opts
	s.mu.Unlock()

	var srv *server.Server
	var err error
	// The old listener's port may take a moment to become free again.
	for deadline := time.Now().Add(readyTimeout); ; {
		srv, err = startServer(&opts)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("natstest: restart: %v", err)
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()

	// Reconnected is not yet ready: wait until JetStream answers its API too,
	// so a test's next publish is not sent into a server still recovering.
	for deadline := time.Now().Add(readyTimeout); ; {
		if s.Conn.IsConnected() {
			ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
			_, err := s.JS.AccountInfo(ctx)
			cancel()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("natstest: client did not reconnect to a ready JetStream within %v", readyTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Shutdown closes every client connection and shuts the server down. It is
// registered with t.Cleanup by Start and safe to call more than once.
func (s *Server) Shutdown() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, nc := range conns {
		nc.Close()
	}
	s.Stop()
}

// startServer starts a server and waits until it accepts connections.
func startServer(opts *server.Options) (*server.Server, error) {
	o := *opts
	srv, err := server.NewServer(&o)
	if err != nil {
		return nil, fmt.Errorf("create server: %w", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(readyTimeout) {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("start server: not ready for connections")
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		srv.WaitForShutdown()
		return nil, errors.New("start server: jetstream is not enabled")
	}
	return srv, nil
}
