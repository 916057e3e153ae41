package deploy_test

import (
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/facestream/facestream/internal/cli"
)

// TestCommandsExist: every `facestream X ...` that compose or Kubernetes runs
// names real subcommands of the facestream command (cli.NewRoot), so a
// renamed command cannot leave a container that exits with "unknown command".
func TestCommandsExist(t *testing.T) {
	root := cli.NewRoot(cli.Streams{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, func(string) string { return "" })
	var used [][]string
	for _, s := range loadCompose(t).Services {
		used = append(used, s.Command)
	}
	for _, o := range overlays {
		objs, _, err := build("k8s/overlays/" + o)
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range objs {
			for _, c := range podContainers(obj) {
				if cmd, ok := c["command"].([]any); ok {
					used = append(used, stringList(cmd))
				}
			}
		}
	}
	checked := 0
	for _, cmd := range used {
		if len(cmd) < 2 || (cmd[0] != "facestream" && cmd[0] != "/usr/local/bin/facestream") {
			continue
		}
		// Walk the words before the first flag down the command tree.
		words := slices.IndexFunc(cmd[1:], func(w string) bool { return strings.HasPrefix(w, "-") })
		if words < 0 {
			words = len(cmd) - 1
		}
		c, rest, err := root.Find(cmd[1 : 1+words])
		if err != nil || c == root || (len(rest) > 0 && !c.Runnable()) {
			t.Errorf("%v: no such facestream command (%v)", cmd, err)
		}
		checked++
	}
	if checked < 3 {
		t.Fatalf("only %d facestream commands found in compose and Kubernetes", checked)
	}
}
