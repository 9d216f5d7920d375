// Command trustd is the Medicus Trust verifier and key-release service.
package main

import (
	"context"
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
		fmt.Fprintln(os.Stderr, "trustd:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		configFile = flag.String("config", "", "YAML configuration file (flags override it)")
		cfg        daemon.Config
		fileCfg    = &daemon.Config{}
	)
	flag.StringVar(&cfg.Listen, "listen", "", "gRPC listen address (default 127.0.0.1:7443)")
	flag.StringVar(&cfg.HTTPListen, "http-listen", "", "read-only HTTP listen address for the audit log (default off)")
	flag.StringVar(&cfg.DataDir, "data-dir", "", "directory for all local state (default ./trustd-data)")
	flag.StringVar(&cfg.Policy, "policy", "", "policy file or directory")
	flag.StringVar(&cfg.MasterKeyFile, "master-key-file", "", "keyring master key file (or set "+daemon.MasterKeyEnv+")")
	flag.BoolVar(&cfg.Dev, "dev", false, "INSECURE development mode: accept simulated evidence, plaintext gRPC")
	jsonLogs := flag.Bool("log-json", false, "log as JSON")
	flag.Parse()
	if flag.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	}
	if *configFile != "" {
		var err error
		if fileCfg, err = daemon.LoadConfig(*configFile); err != nil {
			return err
		}
	}
	merge(fileCfg, &cfg)

	var h slog.Handler = slog.NewTextHandler(os.Stderr, nil)
	if *jsonLogs {
		h = slog.NewJSONHandler(os.Stderr, nil)
	}
	log := slog.New(h)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(ctx, fileCfg, daemon.Env{MasterKey: os.Getenv(daemon.MasterKeyEnv), AuditDSN: os.Getenv(daemon.AuditDSNEnv)}, log)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Run(ctx)
}

// merge lets flags that were set override the file.
func merge(into, flags *daemon.Config) {
	flag.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			into.Listen = flags.Listen
		case "http-listen":
			into.HTTPListen = flags.HTTPListen
		case "data-dir":
			into.DataDir = flags.DataDir
		case "policy":
			into.Policy = flags.Policy
		case "master-key-file":
			into.MasterKeyFile = flags.MasterKeyFile
		case "dev":
			into.Dev = flags.Dev
		}
	})
}
