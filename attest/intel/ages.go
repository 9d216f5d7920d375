package intel

import (
	"sort"

	"github.com/medicus-cloud/trust/attest"
)

// CollateralAges implements attest.CollateralReporter for the online collateral of each
// platform (FMSPC and CA): TCB info, QE identity and the PCK CRL, fetched together.
func (v *QuoteVerifier) CollateralAges() []attest.CollateralAge {
	tee := attest.TDX
	if v.src != nil && v.src.Fetch.SGX {
		tee = attest.SGX
	}
	var out []attest.CollateralAge
	for _, p := range v.Freshness() {
		if p.FetchedAt.IsZero() {
			continue
		}
		a := attest.CollateralAge{TEE: tee, Platform: p.Platform, Item: "pcs-collateral", FetchedAt: p.FetchedAt, Failing: p.LastError != nil}
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Platform < out[j].Platform })
	return out
}
