package service

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/face"
	"github.com/facestream/facestream/internal/modelpack"
	"github.com/facestream/facestream/internal/telemetry"
	"github.com/facestream/facestream/pkg/onnx"
)

// Models are a process's ONNX Runtime and its model pack, loaded once and
// shared by every stage of the process. Close releases both.
type Models struct {
	Runtime *onnx.Runtime
	Pack    modelpack.Pack
	Engine  *face.Engine
}

// OpenModels opens the ONNX Runtime and loads (and verifies) the configured
// model pack.
func OpenModels(cfg config.Config, logger *slog.Logger, reg prometheus.Registerer) (*Models, error) {
	inference, err := telemetry.NewInference(reg)
	if err != nil {
		return nil, fmt.Errorf("open models: %w", err)
	}
	pack, err := modelpack.Lookup(cfg.Models.Pack)
	if err != nil {
		return nil, fmt.Errorf("open models: %w", err)
	}
	prov, err := onnx.ParseProvider(cfg.ORT.Provider)
	if err != nil {
		return nil, fmt.Errorf("open models: %w", err)
	}
	rt, err := onnx.Open(onnx.RuntimeConfig{LibraryPath: cfg.ORT.Library, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("open models: %w", err)
	}
	opts := face.DefaultEngineOptions()
	opts.Threads = cfg.ORT.IntraOpThreads
	opts.InterOpThreads = cfg.ORT.InterOpThreads
	opts.Provider = prov
	opts.DeviceID = cfg.ORT.DeviceID
	opts.FallbackToCPU = cfg.ORT.CPUFallback
	opts.MaxBatch = max(cfg.Embed.BatchSize, 1)
	opts.NoSpinning = !cfg.ORT.Spinning
	opts.Detection.SecondScale = cfg.Detection.SecondScale
	opts.Detection.TryRotations = cfg.Detection.Rotations
	opts.Observe = inference.Observe
	eng, err := face.NewEngine(rt, pack, cfg.Models.Dir, opts)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open models: %w", err), rt.Close())
	}
	logger.Info("models loaded", "pack", pack.Name, "dir", cfg.Models.Dir, "provider", prov, "ort", rt.Version())
	return &Models{Runtime: rt, Pack: pack, Engine: eng}, nil
}

// Close releases the models, then the runtime. It is idempotent.
func (m *Models) Close() error {
	if m == nil {
		return nil
	}
	var errs []error
	if m.Engine != nil {
		errs = append(errs, m.Engine.Close())
	}
	if m.Runtime != nil {
		errs = append(errs, m.Runtime.Close())
	}
	m.Engine, m.Runtime = nil, nil
	return errors.Join(errs...)
}
