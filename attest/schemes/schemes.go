// Package schemes is the one list of the TEE evidence schemes trustd and trustctl know.
//
// Each scheme is described by the package that verifies it (see attest.Scheme): its canonical
// name and spellings, its trustd configuration section and verifier constructor, its offline
// file verifier for `trustctl evidence verify`, its claim names and its measurement rule. trustd
// (internal/daemon), trustctl, package policies and the metrics labels all read this list.
//
// # Adding a TEE
//
// A new kind of evidence, say attest/azure, takes:
//
//  1. its package (attest/azure and, for its guest side, enclave/aztpm; keep binary layouts the
//     guest needs in a leaf package that imports no verifier, as attest/tdx/tdxquote and
//     attest/azure/azureabi do), exporting a Scheme whose TEE constant is declared there, not in
//     package attest. A scheme that wraps another's evidence names it in Scheme.Hardware; a
//     verifier whose evidence carries the report-data binding other than as Claims.ReportData
//     implements attest.BindingChecker;
//  2. one line in All below;
//  3. one value of the TEE enum in api/trustv1/trust.proto named "TEE_" + the TEE name in upper
//     case with "-" as "_" (internal/wire maps by that name; TestProtoEnum checks it), then
//     `make proto`;
//  4. for a guest side, one line in enclave/detect's Detectors.
//
// Nothing else changes: trustd turns the scheme on when a configuration has its section under
// `verifiers:`, so an upgrade never switches on a TEE that nobody configured.
package schemes

import (
	"fmt"
	"strings"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/sgx"
	"github.com/medicus-cloud/trust/attest/sim"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/tdx"
)

// All lists every scheme, in the order trustd builds its verifiers.
var All = []*attest.Scheme{
	&snp.Scheme,
	&tdx.Scheme,
	&sgx.Scheme,
	&sim.Scheme,
	&azure.SNPScheme,
	&azure.TDXScheme,
}

// ByTEE returns the scheme of t, or nil.
func ByTEE(t attest.TEE) *attest.Scheme {
	for _, s := range All {
		if s.TEE == t {
			return s
		}
	}
	return nil
}

// Hardware returns the TEE whose claims t's evidence carries (Scheme.Hardware): t itself unless
// t's scheme wraps another's evidence.
func Hardware(t attest.TEE) attest.TEE {
	if s := ByTEE(t); s != nil && s.Hardware != "" {
		return s.Hardware
	}
	return t
}

// BySection returns the scheme whose configuration section is name, or nil.
func BySection(name string) *attest.Scheme {
	for _, s := range All {
		if s.Section != "" && s.Section == name {
			return s
		}
	}
	return nil
}

// ParseTEE accepts the canonical names and each scheme's other spellings, case-insensitively.
func ParseTEE(name string) (attest.TEE, error) {
	n := strings.ToLower(strings.TrimSpace(name))
	for _, s := range All {
		if n == string(s.TEE) {
			return s.TEE, nil
		}
		for _, a := range s.Aliases {
			if n == a {
				return s.TEE, nil
			}
		}
	}
	ns := Names()
	want := strings.Join(ns[:len(ns)-1], ", ") + " or " + ns[len(ns)-1]
	return "", fmt.Errorf("unknown TEE type %q (want %s)", name, want)
}

// Names lists the canonical names of all schemes.
func Names() []string {
	out := make([]string, len(All))
	for i, s := range All {
		out[i] = string(s.TEE)
	}
	return out
}

// Sections lists the configuration sections of all schemes.
func Sections() []string {
	var out []string
	for _, s := range All {
		if s.Section != "" {
			out = append(out, s.Section)
		}
	}
	return out
}
