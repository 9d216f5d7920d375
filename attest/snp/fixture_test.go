package snp

import (
	"crypto/ecdsa"
	"math/big"
	"testing"
	"time"

	"github.com/google/go-sev-guest/abi"
	sevtest "github.com/google/go-sev-guest/testing"

	"github.com/medicus-cloud/trust/attest/snp/snptest"
)

// The package's own tests use snptest's fake AMD hierarchy through these adapters, which add
// the trust anchors in this package's types.

// t0 is when the fake AMD chains are issued; tests verify at tVerify.
var (
	t0      = snptest.T0
	tVerify = snptest.TVerify
)

type fixture struct {
	product string
	signer  *sevtest.AmdSigner
	hwid    [64]byte
	tcb     TCB
	roots   map[string]*Roots
	st      *snptest.Fixture
}

type fixtureOpts struct {
	vcekKey   *ecdsa.PrivateKey
	vcekSince time.Time
}

func newFixture(t testing.TB, product string, o fixtureOpts) *fixture {
	t.Helper()
	st := snptest.New(t, product, snptest.Options{VCEKKey: o.vcekKey, VCEKSince: o.vcekSince})
	s := st.Signer
	return &fixture{product: product, signer: s, hwid: st.HWID, tcb: TCB(st.TCB), st: st,
		roots: map[string]*Roots{product: {Product: product, ARK: s.Ark, ASK: s.Ask, ASVK: s.Asvk}}}
}

func defaultTCB(product string) TCB { return TCB(snptest.DefaultTCB(product)) }

func hwidOf(product string, seed byte) [64]byte { return snptest.HWIDOf(product, seed) }

func encodeTCB(product string, t TCB) uint64 { return snptest.EncodeTCB(product, snptest.TCB(t)) }

// reportSpec describes a report to build; zero fields take fixture defaults.
type reportSpec struct {
	version    uint32
	signer     abi.ReportSigner
	policy     uint64
	vmpl       uint32
	reportData [64]byte
	chipID     *[64]byte
	tcb        *TCB
	fms        *[3]byte // nil: the fixture product's family, model, stepping (version >= 3)
	mask       bool
}

// report builds and signs a raw report with the fixture's VCEK or VLEK.
func (f *fixture) report(t testing.TB, s reportSpec) []byte {
	t.Helper()
	tcb := snptest.TCB(f.tcb)
	if s.tcb != nil {
		tcb = snptest.TCB(*s.tcb)
	}
	return f.st.Report(t, snptest.ReportSpec{Version: s.version, Signer: s.signer, Policy: s.policy, VMPL: s.vmpl,
		ReportData: s.reportData, ChipID: s.chipID, TCB: &tcb, FMS: s.fms, Mask: s.mask})
}

func (f *fixture) table(t testing.TB) []byte { return f.st.Table(t) }

func vcekOnlyTable(der []byte) []byte { return snptest.VCEKOnlyTable(der) }

func (f *fixture) crl(t testing.TB, from time.Time, life time.Duration, serials ...*big.Int) []byte {
	return f.st.CRL(t, from, life, serials...)
}

func newP384(t testing.TB) *ecdsa.PrivateKey { return snptest.NewP384(t) }

func pemCert(der []byte) []byte { return snptest.PEMCert(der) }
