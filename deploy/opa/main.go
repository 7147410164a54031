// Command opa is the real Open Policy Agent CLI and server, built from OPA's own Go module at
// the release pinned in go.mod. No OPA binary ships in the package registries this project
// can reach, so `make opa` compiles this into bin/opa.
package main

import (
	"errors"
	"os"

	"github.com/open-policy-agent/opa/cmd"
)

func main() {
	err := cmd.RootCommand.Execute()
	if err == nil {
		return
	}
	var exitErr *cmd.ExitError
	if errors.As(err, &exitErr) {
		os.Exit(exitErr.Exit)
	}
	os.Exit(1)
}
