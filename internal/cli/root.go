// Package cli implements the facestream command for people: one file per
// subcommand, wired together by NewRoot. Mains stay thin: cmd/facestream only
// calls NewRoot(...).ExecuteContext.
package cli

import (
	"io"

	"github.com/spf13/cobra"
)

// Streams are the standard streams a command reads and writes; tests pass buffers.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// NewRoot returns the facestream root command with every subcommand attached.
// getenv is how settings are read from the environment (os.Getenv in main).
func NewRoot(s Streams, getenv func(string) string) *cobra.Command {
	root := &cobra.Command{
		Use:           "facestream",
		Short:         "Face analysis as a streaming pipeline on NATS JetStream, ONNX Runtime and pgvector",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	root.AddCommand(
		// Each subcommand lives in its own file; add one line here per subcommand.
		newMigrateCommand(getenv),
		newModelsCommand(getenv),
		newRunCommand(getenv),
		newSubmitCommand(getenv),
		newAnalyzeCommand(s, getenv),
		newAPICommand(getenv),
		newCompareCommand(s, getenv),
		newSearchCommand(s, getenv),
		newSubjectsCommand(s, getenv),
		newKeysCommand(s, getenv),
		newBenchCommand(s, getenv),
	)
	return root
}
