package intel

import (
	"context"
	"sort"
	"strings"
	"time"

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

// RefreshCollateral refreshes the online collateral of every platform seen, when due, whether
// or not a quote asks for it, so that a refresh failure shows in CollateralAges in time.
func (v *QuoteVerifier) RefreshCollateral(ctx context.Context, now time.Time) {
	if v.src == nil {
		return
	}
	v.state.mu.Lock()
	keys := make([]string, 0, len(v.state.m))
	for k := range v.state.m {
		keys = append(keys, k)
	}
	v.state.mu.Unlock()
	for _, k := range keys {
		fmspc, ca, _ := strings.Cut(k, "/")
		_, _ = v.fetchFresh(ctx, fmspc, ca, now) // failures show in CollateralAges and at use
	}
}
