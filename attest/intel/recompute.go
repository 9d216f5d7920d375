package intel

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/medicus-cloud/trust/attest"
)

// TCB status at release (issue 16). A token carries the TCB status Intel's TCB info gave when
// the workload attested; after a TCB recovery the refreshed TCB info says OutOfDate. Each
// release therefore recomputes the status from the TCB components the claims carry and the
// collateral in use now (InUse), and a platform whose status got worse only because newer TCB
// info arrived may be appraised under the previous set's status while its policy's grace lasts
// (AppraiseRecovery, attest.TCBDowngrade).

// InUse returns, from memory only, the verified collateral that quote verification would use
// now for the platform (FMSPC in lowercase hex, PCK CA) and, for online collateral, the set in
// use before the last rise of the TCB evaluation data number with when the newer set was first
// accepted. A nil set without error means trustd has no collateral of its own for the platform
// (only the evidence's, or none): the claims' status stands. Online collateral that trustd
// does not hold in memory (after a restart) fails with attest.ErrStaleClaims, so that the
// workload attests again and the collateral is fetched; collateral past its maximum age or
// validity is Unavailable.
func (v *QuoteVerifier) InUse(fmspc, ca string, now time.Time) (cur, prev *Verified, since time.Time, err error) {
	if d := v.Offline(); d != nil && d.FMSPC() == fmspc {
		cur, err = v.VerifyOffline(d, now)
		return cur, nil, time.Time{}, err
	}
	if d := v.platform(fmspc); d != nil {
		cur, err = v.VerifyOffline(d, now)
		return cur, nil, time.Time{}, err
	}
	if !v.CanFetch() {
		return nil, nil, time.Time{}, nil
	}
	v.state.mu.Lock()
	e := v.state.m[fmspc+"/"+ca]
	v.state.mu.Unlock()
	var s *onlineSnap
	if e != nil {
		s = e.snap.Load()
	}
	if s == nil {
		return nil, nil, time.Time{}, fmt.Errorf("%w: platform fmspc %s (%s CA): no online collateral in memory", attest.ErrStaleClaims, fmspc, ca)
	}
	if age := now.Sub(s.fetchedAt); age > v.fresh.MaxAge {
		return nil, nil, time.Time{}, attest.Unavailable("collateral", fmt.Errorf("platform fmspc %s (%s CA): the last good set was fetched %s ago (at most %s)", fmspc, ca, age.Round(time.Second), v.fresh.MaxAge))
	}
	if err := s.vc.ValidAt(now); err != nil {
		return nil, nil, time.Time{}, attest.Unavailable("collateral", fmt.Errorf("platform fmspc %s (%s CA): %w", fmspc, ca, err))
	}
	return s.vc, s.prev, s.since, nil
}

// Previous returns the set in use before vc raised the TCB evaluation data number of the
// platform's online collateral, and when vc's number was first accepted; nil when vc is not
// the online set in use or there is none before it.
func (v *QuoteVerifier) Previous(fmspc, ca string, vc *Verified) (*Verified, time.Time) {
	if vc == nil || !v.CanFetch() {
		return nil, time.Time{}
	}
	v.state.mu.Lock()
	e := v.state.m[fmspc+"/"+ca]
	v.state.mu.Unlock()
	if e == nil {
		return nil, time.Time{}
	}
	if s := e.snap.Load(); s != nil && s.vc == vc {
		return s.prev, s.since
	}
	return nil, time.Time{}
}

// rank orders statuses from best to worst.
func rank(s Status) int {
	switch s {
	case UpToDate:
		return 0
	case SWHardeningNeeded:
		return 1
	case ConfigurationNeeded:
		return 2
	case ConfigurationAndSWHardeningNeeded:
		return 3
	case TDRelaunchAdvised:
		return 4
	case TDRelaunchAdvisedConfigurationNeeded:
		return 5
	case OutOfDate:
		return 6
	case OutOfDateConfigurationNeeded:
		return 7
	}
	return 8 // Revoked, Unknown and anything else
}

// Evaluation computes a status and advisories under one verified set; an error means the set
// cannot appraise the platform at all.
type Evaluation func(vc *Verified) (Status, []string, error)

// AppraiseRecovery evaluates the platform under cur and, when prev (a set with a lower TCB
// evaluation data number, see InUse and Previous) gave a status refuse accepts and the status
// under cur is worse or lists other advisories, reports the downgrade instead of refusing.
// Revoked is never a downgrade, and neither is a status the previous set already refused.
func AppraiseRecovery(cur, prev *Verified, since time.Time, eval Evaluation, refuse func(Status, []string) error) (Status, []string, *attest.TCBDowngrade, error) {
	st, adv, err := eval(cur)
	if err != nil {
		return "", nil, nil, err
	}
	refusal := refuse(st, adv)
	if prev != nil && st != Revoked && evalNumber(prev) < evalNumber(cur) {
		pst, padv, perr := eval(prev)
		newAdv := slices.ContainsFunc(adv, func(a string) bool { return !slices.Contains(padv, a) })
		if perr == nil && refuse(pst, padv) == nil && (rank(st) > rank(pst) || rank(st) == rank(pst) && newAdv) {
			return st, adv, &attest.TCBDowngrade{Status: string(pst), Advisories: padv, FromEval: evalNumber(prev),
				ToEval: evalNumber(cur), Since: since, Refusal: refusal}, nil
		}
	}
	if refusal != nil {
		return "", nil, nil, refusal
	}
	return st, adv, nil, nil
}

// Claim names, shared by TDX and SGX, that let a release recompute the TCB status from the
// claims alone (Config, all hex): the PCK's SGX TCB components, and the QE report's MISCSELECT
// (4 bytes, little endian) and ATTRIBUTES (16 bytes) for matching the QE identity. With pce_svn
// and qe_svn (TCB) and fmspc and pce_id (Platform) they are everything PlatformLevel and
// EnclaveIdentity.Match read; the QE's MRSIGNER and ISVPRODID are pinned by each verifier.
const (
	ClaimPCKTCBComponents = "sgx_tcb_components"
	ClaimQEMiscSelect     = "qe_misc_select"
	ClaimQEAttributes     = "qe_attributes"
)

// SetQEClaims records the QE report fields the QE identity matches on beyond the pinned ones.
func SetQEClaims(c *attest.Claims, qe *EnclaveReport) {
	c.Config[ClaimQEMiscSelect] = binary.LittleEndian.AppendUint32(nil, qe.MiscSelect)
	c.Config[ClaimQEAttributes] = attest.Hex(qe.Attributes[:])
}

// RecomputeInput rebuilds, from claims an Intel verifier issued, the PCK extensions and QE
// report that TCB appraisal reads (mrsigner and prodID are the pinned QE's). Claims from a
// trustd that did not record them fail with attest.ErrStaleClaims.
func RecomputeInput(c *attest.Claims, mrsigner [32]byte, prodID uint16) (*PCKExtensions, *EnclaveReport, error) {
	comps, misc, attr := c.Config[ClaimPCKTCBComponents], c.Config[ClaimQEMiscSelect], c.Config[ClaimQEAttributes]
	pce, okPCE := c.TCB["pce_svn"]
	qesvn, okQE := c.TCB["qe_svn"]
	fm, err1 := hex.DecodeString(c.Platform["fmspc"])
	pceID, err2 := hex.DecodeString(c.Platform["pce_id"])
	if len(comps) != 16 || len(misc) != 4 || len(attr) != 16 || !okPCE || !okQE || pce > 0xffff || qesvn > 0xffff ||
		err1 != nil || len(fm) != 6 || err2 != nil || len(pceID) != 2 {
		return nil, nil, fmt.Errorf("%w: the claims lack the TCB components, QE or platform fields (issued by an older trustd)", attest.ErrStaleClaims)
	}
	ext := &PCKExtensions{PCESVN: uint16(pce)}
	copy(ext.TCBComponents[:], comps)
	copy(ext.FMSPC[:], fm)
	copy(ext.PCEID[:], pceID)
	qe := &EnclaveReport{MRSIGNER: mrsigner, ISVProdID: prodID, MiscSelect: binary.LittleEndian.Uint32(misc), ISVSVN: uint16(qesvn)}
	copy(qe.Attributes[:], attr)
	return ext, qe, nil
}
