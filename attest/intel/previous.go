package intel

import (
	"context"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// The set a TCB recovery replaced is kept in the collateral store under previousKey, with the
// time the replacing set was first fetched as its fetch time, so that a TCB recovery grace
// survives a restart and, with a store that replicas share, starts at the same time on every
// replica. It is verified again when read; whatever does not verify is ignored, and no grace
// applies.

// previousSuffix ends the store key of the set a TCB recovery replaced.
const previousSuffix = "/previous"

func previousKey(key string) string { return key + previousSuffix }

// loadPrevious reads and verifies the set kept for the platform; nil when there is none that
// verifies at now.
func (v *QuoteVerifier) loadPrevious(ctx context.Context, fmspc, ca string, now time.Time) (*Verified, time.Time) {
	if v.store == nil || v.src == nil {
		return nil, time.Time{}
	}
	tee := attest.TDX
	if v.src.Fetch.SGX {
		tee = attest.SGX
	}
	key, err := StoreKey(tee, fmspc, ca)
	if err != nil {
		return nil, time.Time{}
	}
	files, since, err := v.store.Load(ctx, previousKey(key))
	if err != nil || files == nil || since.After(now) {
		return nil, time.Time{}
	}
	c, err := CollateralFromFiles(files)
	if err != nil {
		return nil, time.Time{}
	}
	vc, err := v.roots.VerifyCollateral(c, now)
	if err != nil {
		return nil, time.Time{}
	}
	return vc, since
}
