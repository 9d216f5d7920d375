package collateral_test

import (
	"context"

	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/attest/snp/snptest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/collateral"
)

// TestDiffGolden: an Intel TCB recovery raises the SGX components a platform needs for UpToDate,
// and AMD revokes Milan's ASK. The preview names the TDX platform and image that would become
// OutOfDate and the SEV-SNP chip that would be refused, from the claims in the audit log.
func TestDiffGolden(t *testing.T) {
	ctx := context.Background()
	f, err := tdxtest.NewFixture()
	if err != nil {
		t.Fatal(err)
	}
	// Today's collateral: the platform is UpToDate.
	old, err := f.Collateral(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := old.WriteDir(filepath.Join(dir, "old")); err != nil {
		t.Fatal(err)
	}
	v, err := tdx.New(tdx.Options{Root: f.PKI.Root, CollateralDir: filepath.Join(dir, "old")})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(ctx, &attest.Evidence{TEE: attest.TDX, Report: f.Quote(f.DefaultSpec())}, attest.Options{Now: f.Now})
	if err != nil || c.TCBStatus != "UpToDate" {
		t.Fatalf("claims %v, %v", c, err)
	}
	c.ReportData = nil
	tdxClaims, _ := json.Marshal(c)
	az := *c
	az.TEE = azure.TDX
	az.Platform = map[string]string{"paravisor": azure.Paravisor}
	for k, v := range c.Platform {
		az.Platform[k] = v
	}
	azureClaims, _ := json.Marshal(&az)

	amd := snptest.New(t, snptest.Milan, snptest.Options{})
	snpClaims, _ := json.Marshal(&attest.Claims{TEE: attest.SEVSNP, Measurement: make(attest.Hex, 48),
		Platform: map[string]string{"product": snptest.Milan, "signer": snp.SignerVCEK, snp.ClaimChipID: hex.EncodeToString(amd.HWID[:])}})

	// The audit log of the last days.
	logDir := filepath.Join(dir, "audit")
	l, err := posix.Open(ctx, posix.Options{Dir: logDir})
	if err != nil {
		t.Fatal(err)
	}
	t0 := f.Now.Add(-48 * time.Hour)
	recs := []*audit.Record{
		{Event: audit.EventAttest, TEE: "tdx", Measurement: c.Measurement.String(), Verdict: "allow", Claims: tdxClaims},
		{Event: audit.EventAttest, TEE: "tdx", Measurement: c.Measurement.String(), Verdict: "allow", Claims: tdxClaims},
		{Event: audit.EventAttest, TEE: "sev-snp", Verdict: "allow", Claims: snpClaims},
		{Event: audit.EventAttest, TEE: "tdx", Verdict: "deny"},
		{Event: audit.EventAttest, TEE: "azure-tdx", Measurement: c.Measurement.String(), Verdict: "allow", Claims: azureClaims},
	}
	for i, r := range recs {
		r.Time, r.RequestID = t0.Add(time.Duration(i)*time.Hour), "r"+string(rune('0'+i))
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	vkey, _ := os.ReadFile(filepath.Join(logDir, "note.pub"))
	src := auditor.Source{Log: logDir, Key: strings.TrimSpace(string(vkey))}

	// The new collateral: UpToDate now needs SGX components 6.
	ti := f.TCBInfo()
	ti.TCBEvaluationDataNumber = 18
	for i := range ti.TCBLevels[0].TCB.SGXTCBComponents {
		ti.TCBLevels[0].TCB.SGXTCBComponents[i].SVN = 6
	}
	qe := f.QEIdentity()
	qe.TCBEvaluationDataNumber = 18
	recovered, err := f.Collateral(ti, qe, false)
	if err != nil {
		t.Fatal(err)
	}
	b := &collateral.Bundle{Issued: f.Now, Files: map[string][]byte{}}
	for name, data := range recovered.Map() {
		b.Files["intel/tdx/"+hex.EncodeToString(tdxtest.FMSPC[:])+"/"+name] = data
	}
	b.Files["snp/crl/Milan-vcek.der"] = amd.CRL(t, f.Now.Add(-time.Hour), 90*24*time.Hour, amd.Signer.Ask.SerialNumber)
	roots := map[string]*snp.Roots{snptest.Milan: {Product: snptest.Milan, ARK: amd.Signer.Ark, ASK: amd.Signer.Ask, ASVK: amd.Signer.Asvk}}

	rep, err := collateral.Diff(ctx, collateral.DiffOptions{Source: src, New: b, Since: f.Now.Add(-7 * 24 * time.Hour), Now: f.Now,
		IntelRoot: f.PKI.Root, AMDRoots: roots})
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "diff.golden")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(golden, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != string(want) {
		t.Errorf("diff:\n%s\nwant:\n%s", out.String(), want)
	}

	// Against today's collateral nothing changes; records before --days are not read.
	same := &collateral.Bundle{Issued: f.Now, Files: map[string][]byte{}}
	for name, data := range old.Map() {
		same.Files["intel/tdx/"+hex.EncodeToString(tdxtest.FMSPC[:])+"/"+name] = data
	}
	rep, err = collateral.Diff(ctx, collateral.DiffOptions{Source: src, New: same, Now: f.Now, IntelRoot: f.PKI.Root, AMDRoots: roots})
	if err != nil || len(rep.Changes) != 0 || rep.Appraised != 4 {
		t.Errorf("same collateral: %+v, %v", rep, err)
	}
	rep, err = collateral.Diff(ctx, collateral.DiffOptions{Source: src, New: b, Since: f.Now, Now: f.Now, IntelRoot: f.PKI.Root, AMDRoots: roots})
	if err != nil || rep.Appraised != 0 {
		t.Errorf("since now: %+v, %v", rep, err)
	}
}
