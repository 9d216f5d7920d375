package sim

import "github.com/medicus-cloud/trust/attest"

// Claim names this package fills beyond the common claims; they mean what SEV-SNP's do.
const (
	ClaimHostData = "host_data" // Config, 32 bytes
	ClaimGuestSVN = "guest_svn" // TCB
)

// Scheme is the INSECURE simulated TEE: trustd turns it on with --dev only, whatever the
// configuration says (see attest/schemes).
var Scheme = attest.Scheme{
	TEE:         attest.InsecureSimulated,
	Aliases:     []string{"sim", "simulated"},
	Section:     "sim",
	DevOnly:     true,
	NewConfig:   func() attest.SchemeConfig { return new(Config) },
	Measurement: attest.MeasurementRule{Register: "simulated measurement", Size: MeasurementSize},
	Claims: attest.ClaimNames{
		Config: map[string]int{ClaimHostData: HostDataSize},
		TCB:    []string{ClaimGuestSVN},
	},
}

// Config is the `verifiers: sim:` section, which has no settings: the simulated TEE is on
// exactly when trustd runs with --dev.
type Config struct{}

// Disabled implements attest.SchemeConfig.
func (*Config) Disabled() bool { return false }

// NewVerifier implements attest.SchemeConfig.
func (*Config) NewVerifier(d attest.Deps) (attest.Verifier, error) {
	if d.Logger != nil {
		d.Logger.Warn("DEV MODE: accepting INSECURE simulated evidence that anyone can forge; never use in production")
	}
	return NewInsecureVerifier(), nil
}
