package api_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/facestream/facestream/internal/auth"
	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/natstest"
	"github.com/facestream/facestream/internal/pgtest"
	"github.com/facestream/facestream/internal/service"
	"github.com/facestream/facestream/migrations"
)

// `facestream api` (service.RunAPI): the edge alone against external NATS
// and PostgreSQL is ready, accepts an image and stops with its context.
func TestStandaloneAPI(t *testing.T) {
	srv := natstest.Start(t)
	dsn := pgtest.NewDSN(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := config.Default()
	cfg.NATS.URL = config.Secret(srv.URL)
	cfg.Database.URL = config.Secret(dsn)
	cfg.HTTP.Addr = addr
	cfg.Metrics.Addr = ""
	if err := cfg.ValidateFor(config.API); err != nil {
		t.Fatal(err)
	}
	// The edge does not migrate: migrate first, as `facestream migrate` does.
	if err := service.Apply(context.Background(), srv.JS, cfg, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	migrated := migrateDSN(t, dsn)
	key, _, err := auth.NewStore(migrated).Create(ctx, auth.CreateOptions{Tenant: "default", Name: "standalone", Scopes: []string{"write"}})
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- service.RunAPI(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/images", strings.NewReader(string(grayImage(t))))
	req.Header.Set("Content-Type", "image/jpeg")
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("POST /v1/images: %d %s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunAPI: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("RunAPI did not stop")
	}
}

// migrateDSN migrates the database of dsn and returns a pool on it, closed
// when t ends.
func migrateDSN(t *testing.T, dsn string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := migrations.Up(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}
