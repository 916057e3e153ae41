package config_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/facestream/facestream/internal/config"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ExampleLoad() {
	fs := pflag.NewFlagSet("embed", pflag.ContinueOnError)
	config.AddFlags(fs, config.Embed)
	_ = fs.Parse([]string{"--embed-batch-size=32"})
	env := map[string]string{
		"FACESTREAM_EMBED_BATCH_SIZE": "8", // the flag wins
		"FACESTREAM_NATS_URL":         "nats://svc:s3cret@nats:4222",
	}
	cfg, err := config.Load(config.Embed, fs, func(k string) string { return env[k] })
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	fmt.Println(cfg.Embed.BatchSize, cfg.Embed.BatchMaxWait)
	fmt.Println(cfg.NATS.URL)
	// Output:
	// 32 0s
	// nats://xxxxx@nats:4222
}
