package intel

import (
	"context"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// advance records an accepted online set in the high-water mark shared by replicas
// (Freshness.HighWater), with the same order NotOlder uses: TCB info and QE identity by TCB
// evaluation data number, CRLs by thisUpdate and CRL number. It fails with an error wrapping
// ErrOlder when another replica has accepted a newer set.
func (v *QuoteVerifier) advance(ctx context.Context, fmspc, ca string, vc *Verified) error {
	hw := v.fresh.HighWater
	if hw == nil {
		return nil
	}
	tee := attest.TDX
	if v.src != nil && v.src.Fetch.SGX {
		tee = attest.SGX
	}
	prefix := string(tee) + "/" + fmspc + "/" + ca + "/"
	check := func(file string, err error) error {
		if err == nil {
			return nil
		}
		return &FileError{file, err}
	}
	if err := check(FileTCBInfo, hw.Advance(ctx, prefix+"tcb-info", time.Time{}, int64(vc.TCBInfo.TCBEvaluationDataNumber))); err != nil {
		return err
	}
	if err := check(FileQEIdentity, hw.Advance(ctx, prefix+"qe-identity", time.Time{}, int64(vc.QEIdentity.TCBEvaluationDataNumber))); err != nil {
		return err
	}
	for _, c := range []struct {
		file, item string
		crl        *CRL
	}{{FilePCKCRL, "pck-crl", vc.PCKCRL}, {FileRootCRL, "root-crl", vc.RootCRL}} {
		if c.crl == nil || c.crl.List == nil {
			continue
		}
		n := int64(-1)
		if c.crl.List.Number != nil && c.crl.List.Number.IsInt64() {
			n = c.crl.List.Number.Int64()
		}
		if err := check(c.file, hw.Advance(ctx, prefix+c.item, c.crl.List.ThisUpdate, n)); err != nil {
			return err
		}
	}
	return nil
}
