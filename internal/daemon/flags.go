package daemon

import (
	"flag"
	"fmt"
	"io"
)

// CommandLine is trustd's command line, parsed by the one flag set that trustd itself uses, so
// that whoever checks a deployment's arguments (deploy's tests) reads them exactly as trustd
// does: "-dev", "--dev" and "-dev=true" are all dev mode.
type CommandLine struct {
	// ConfigFile is the YAML file named by --config, if any.
	ConfigFile string
	// JSONLogs is --log-json.
	JSONLogs bool

	flags Config
	set   map[string]bool
}

// ParseCommandLine parses trustd's arguments (without the program name). Usage and errors go
// to output.
func ParseCommandLine(args []string, output io.Writer) (*CommandLine, error) {
	c := &CommandLine{set: map[string]bool{}}
	fs := flag.NewFlagSet("trustd", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&c.ConfigFile, "config", "", "YAML configuration file (flags override it)")
	fs.StringVar(&c.flags.Listen, "listen", "", "gRPC listen address (default 127.0.0.1:7443)")
	fs.StringVar(&c.flags.HTTPListen, "http-listen", "", "read-only HTTP listen address for the audit log (default off)")
	fs.StringVar(&c.flags.DataDir, "data-dir", "", "directory for all local state (default ./trustd-data)")
	fs.StringVar(&c.flags.Policy, "policy", "", "policy file or directory")
	fs.StringVar(&c.flags.MasterKeyFile, "master-key-file", "", "keyring master key file (or set "+MasterKeyEnv+")")
	fs.BoolVar(&c.flags.Dev, "dev", false, "INSECURE development mode: accept simulated evidence, plaintext gRPC; loopback addresses only")
	fs.BoolVar(&c.JSONLogs, "log-json", false, "log as JSON")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	return c, nil
}

// Dev reports whether the command line asks for dev mode.
func (c *CommandLine) Dev() bool { return c.set["dev"] && c.flags.Dev }

// Apply lets the flags that were set override into (the configuration file's values).
func (c *CommandLine) Apply(into *Config) {
	for name := range c.set {
		switch name {
		case "listen":
			into.Listen = c.flags.Listen
		case "http-listen":
			into.HTTPListen = c.flags.HTTPListen
		case "data-dir":
			into.DataDir = c.flags.DataDir
		case "policy":
			into.Policy = c.flags.Policy
		case "master-key-file":
			into.MasterKeyFile = c.flags.MasterKeyFile
		case "dev":
			into.Dev = c.flags.Dev
		}
	}
}
