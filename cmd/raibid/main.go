// Command raibid is the one binary of raibid-ci: server, agents, dashboard
// and clients. main only wires signals, the command tree and exit codes.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/raibid-labs/raibid-ci/internal/cli"
)

func main() {
	// SIGINT and SIGTERM cancel the context; every command stops cleanly on it.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := cli.NewRoot(os.Stdout, os.Stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "raibid: "+err.Error())
	}
	stop()
	os.Exit(cli.ExitCode(err))
}
