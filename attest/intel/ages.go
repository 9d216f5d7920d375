package intel

import (
	"context"
	"fmt"
	"math/big"
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

// ClaimPCKSerial is the platform claim holding the PCK certificate's serial number (hex), so
// that a release can be refused once the PCK CRL revokes it.
const ClaimPCKSerial = "pck_serial"

// RecheckPCK refuses a PCK (by FMSPC, CA and serial in hex) that the PCK CRL in use now for its
// platform (offline, else online) revokes, or whose platform's online collateral is past the
// maximum age. It never touches the network; platforms without collateral of trustd's own pass.
func (v *QuoteVerifier) RecheckPCK(fmspc, ca, serialHex string, now time.Time) error {
	if fmspc == "" || serialHex == "" {
		return nil
	}
	// Offline collateral (a directory or an imported bundle) comes first, as in Collateral: a
	// reloaded PCK CRL reaches outstanding tokens too.
	d := v.Offline()
	if d == nil || d.FMSPC() != fmspc {
		d = v.platform(fmspc)
	}
	if d != nil {
		vc, err := v.VerifyOffline(d, now)
		if err != nil {
			return err
		}
		return recheckSerial(vc.PCKCRL, fmspc, ca, serialHex)
	}
	if v.src == nil {
		return nil
	}
	v.state.mu.Lock()
	e := v.state.m[fmspc+"/"+ca]
	v.state.mu.Unlock()
	if e == nil {
		return nil
	}
	s := e.snap.Load()
	if s == nil || s.vc.PCKCRL == nil {
		return nil
	}
	if err := recheckSerial(s.vc.PCKCRL, fmspc, ca, serialHex); err != nil {
		return err
	}
	if age := now.Sub(s.fetchedAt); age > v.fresh.MaxAge {
		return attest.Unavailable("collateral", fmt.Errorf("platform fmspc %s (%s CA): the last good set was fetched %s ago (at most %s)", fmspc, ca, age.Round(time.Second), v.fresh.MaxAge))
	}
	return nil
}

// recheckSerial refuses the PCK serial (hex) when crl revokes it, or when crl is not the CRL of
// the claims' PCK CA kind (the PCK would no longer verify against it).
func recheckSerial(crl *CRL, fmspc, ca, serialHex string) error {
	serial, ok := new(big.Int).SetString(serialHex, 16)
	if !ok {
		return attest.Malformed("platform."+ClaimPCKSerial, "not hex")
	}
	if k, err := caKind(crl.Issuer.Subject.CommonName); err != nil || k != ca {
		return attest.NotAuthentic("collateral."+FilePCKCRL, fmt.Errorf("platform fmspc %s: the PCK CRL in use is from %q, not the %s CA that issued the PCK", fmspc, crl.Issuer.Subject.CommonName, ca))
	}
	if crl.RevokedSerial(serial) {
		return attest.NotAuthentic("quote.pck_chain.revoked", fmt.Errorf("platform fmspc %s: PCK certificate (serial %x) is revoked by the %s CA CRL", fmspc, serial, ca))
	}
	return nil
}
