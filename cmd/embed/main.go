// Command embed is the facestream embed stage: one JetStream pull consumer of the
// pipeline, configured by flags and FACESTREAM_* variables (run it with
// --help for every setting). See docs/pipeline.md.
package main

import (
	"os"

	"github.com/facestream/facestream/internal/config"
	"github.com/facestream/facestream/internal/service"
)

func main() {
	os.Exit(service.Main(config.Embed, os.Args[1:], os.Getenv, os.Stderr))
}
