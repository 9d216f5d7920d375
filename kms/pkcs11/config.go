package pkcs11

import (
	"errors"
	"fmt"
	"regexp"
)

// Config is the PKCS#11 section of trustd's configuration: which module, which token, where the
// PIN comes from. The PIN itself is never part of the configuration or the command line.
type Config struct {
	// Module is the path of the vendor's PKCS#11 library, for example
	// /usr/lib/softhsm/libsofthsm2.so.
	Module string `yaml:"module" json:"module"`
	// Token is the label of the token that holds the tenant's keys.
	Token string `yaml:"token" json:"token"`
	// PINFile holds the user PIN (surrounding whitespace is ignored). It is read again at every
	// login, so a changed PIN is picked up without a restart.
	PINFile string `yaml:"pin_file,omitempty" json:"pin_file,omitempty"`
	// PINEnv names the environment variable that holds the user PIN, as an alternative.
	PINEnv string `yaml:"pin_env,omitempty" json:"pin_env,omitempty"`
	// LabelPrefix namespaces trustd's objects in the token. Default "medicus-trust".
	LabelPrefix string `yaml:"label_prefix,omitempty" json:"label_prefix,omitempty"`
	// Sessions bounds the sessions kept open (PKCS#11 sessions are not shared between
	// goroutines). Default 4.
	Sessions int `yaml:"sessions,omitempty" json:"sessions,omitempty"`
}

// Options are what a test or trustd injects. The zero value is the real thing.
type Options struct {
	// LookupEnv reads the PIN's environment variable; it defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile reads the PIN file; it defaults to keyfile.Read, which refuses files that others
	// may read or that the group may write.
	ReadFile func(string) ([]byte, error)
}

// DefaultLabelPrefix is the default LabelPrefix.
const DefaultLabelPrefix = "medicus-trust"

var (
	prefixRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	envRE    = regexp.MustCompile(`^[A-Z_][A-Z0-9_]{0,127}$`)
)

// Validate reports every invalid field.
func (c *Config) Validate() error {
	var errs []error
	if c.Module == "" {
		errs = append(errs, errors.New("module: the path of the PKCS#11 library is required"))
	}
	if c.Token == "" || len(c.Token) > 32 {
		errs = append(errs, errors.New("token: a token label of 1 to 32 bytes is required"))
	}
	switch {
	case c.PINFile == "" && c.PINEnv == "":
		errs = append(errs, errors.New("pin_file or pin_env: one is required (the PIN is never taken from the command line or this file)"))
	case c.PINFile != "" && c.PINEnv != "":
		errs = append(errs, errors.New("pin_file and pin_env: set only one"))
	case c.PINEnv != "" && !envRE.MatchString(c.PINEnv):
		errs = append(errs, fmt.Errorf("pin_env: %q is not an environment variable name", c.PINEnv))
	}
	if c.LabelPrefix != "" && !prefixRE.MatchString(c.LabelPrefix) {
		errs = append(errs, fmt.Errorf("label_prefix: %q must match %s", c.LabelPrefix, prefixRE))
	}
	if c.Sessions < 0 || c.Sessions > 64 {
		errs = append(errs, fmt.Errorf("sessions: %d outside 0..64", c.Sessions))
	}
	return errors.Join(errs...)
}
