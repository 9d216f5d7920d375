// Command trustd is the Medicus Trust verifier and key-release service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/medicus-cloud/trust/internal/daemon"
)

func main() {
	if err := run(); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "trustd:", err)
		os.Exit(1)
	}
}

func run() error {
	cl, err := daemon.ParseCommandLine(os.Args[1:], os.Stderr)
	if err != nil {
		return err
	}
	cfg := &daemon.Config{}
	if cl.ConfigFile != "" {
		if cfg, err = daemon.LoadConfig(cl.ConfigFile); err != nil {
			return err
		}
	}
	cl.Apply(cfg)
	stopProfiles, err := startProfiles()
	if err != nil {
		return err
	}
	defer stopProfiles()

	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if cl.JSONLogs {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(ctx, cfg, daemon.Env{MasterKey: os.Getenv(daemon.MasterKeyEnv), AuditDSN: os.Getenv(daemon.AuditDSNEnv), LookupEnv: os.LookupEnv}, log)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Run(ctx)
}
