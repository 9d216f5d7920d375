package collateral

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/snp"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
)

// TCB recovery preview (issue 16): for new collateral, which platforms and images that trustd
// accepted recently would get another TCB status. Accepted attestations are recorded with their
// claims, which hold what the TCB status is computed from (for TDX: FMSPC, the PCK's SGX TCB
// components and PCESVN, TEE_TCB_SVN, the QE's SVN, the TDX module's signer), so each is
// appraised again against the new collateral and compared with the status recorded.

// DiffOptions configure Diff.
type DiffOptions struct {
	Source auditor.Source
	// New is the new collateral (a verified bundle).
	New *Bundle
	// Since skips records before it.
	Since time.Time
	// Now is when the new collateral's signatures and validity are checked; zero means time.Now.
	Now time.Time
	// IntelRoot replaces Intel's root (tests); AMDRoots replaces AMD's (tests).
	IntelRoot *x509.Certificate
	AMDRoots  map[string]*snp.Roots
}

// Change is one platform and image whose TCB status the new collateral changes.
type Change struct {
	TEE      string    `json:"tee"`
	Platform string    `json:"platform"`
	Image    string    `json:"image"`
	Was      string    `json:"was"`
	Would    string    `json:"would"`
	Because  string    `json:"because,omitempty"`
	Records  int       `json:"records"`
	LastSeen time.Time `json:"last_seen"`
}

// DiffReport is the outcome of Diff.
type DiffReport struct {
	LogSize uint64 `json:"log_size"`
	// Appraised counts accepted attestations appraised again; Skipped those that could not be
	// (older records without the claims, TEEs without collateral).
	Appraised int      `json:"appraised"`
	Skipped   int      `json:"skipped"`
	Changes   []Change `json:"changes"`
}

// Diff reads and verifies the audit log and appraises every accepted attestation since
// o.Since against o.New.
func Diff(ctx context.Context, o DiffOptions) (*DiffReport, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	a, err := newAppraiser(o, now)
	if err != nil {
		return nil, err
	}
	rep := &DiffReport{}
	changes := map[[5]string]*Change{}
	cp, err := auditor.Scan(ctx, o.Source, func(_ uint64, r *audit.Record) error {
		if r.Event != audit.EventAttest || r.Verdict != audit.VerdictAllow || len(r.Claims) == 0 || !o.Since.IsZero() && r.Time.Before(o.Since) {
			return nil
		}
		var c attest.Claims
		if err := json.Unmarshal(r.Claims, &c); err != nil {
			rep.Skipped++
			return nil
		}
		platform, was, would, because, ok := a.appraise(&c)
		if !ok {
			rep.Skipped++
			return nil
		}
		rep.Appraised++
		if was == would {
			return nil
		}
		image := string(c.TEE) + ":" + c.Measurement.String()
		k := [5]string{string(c.TEE), platform, image, was, would}
		ch := changes[k]
		if ch == nil {
			ch = &Change{TEE: string(c.TEE), Platform: platform, Image: image, Was: was, Would: would, Because: because}
			changes[k] = ch
		}
		ch.Records++
		if r.Time.After(ch.LastSeen) {
			ch.LastSeen = r.Time.UTC()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("collateral diff: the log does not verify, no report: %w", err)
	}
	rep.LogSize = cp.Size
	for _, ch := range changes {
		rep.Changes = append(rep.Changes, *ch)
	}
	sort.Slice(rep.Changes, func(i, j int) bool {
		a, b := rep.Changes[i], rep.Changes[j]
		if a.TEE != b.TEE {
			return a.TEE < b.TEE
		}
		if a.Platform != b.Platform {
			return a.Platform < b.Platform
		}
		return a.Image < b.Image
	})
	return rep, nil
}

// appraiser holds the new collateral, verified.
type appraiser struct {
	intel map[string]*intel.Verified // by "tdx/fmspc"
	// intelErr remembers platforms whose new collateral does not verify.
	intelErr map[string]error
	amd      map[string]*x509.RevocationList // by "product/signer"
	amdRoots map[string]*snp.Roots
}

func newAppraiser(o DiffOptions, now time.Time) (*appraiser, error) {
	if o.New == nil {
		return nil, fmt.Errorf("collateral diff: no new collateral")
	}
	a := &appraiser{intel: map[string]*intel.Verified{}, intelErr: map[string]error{}, amd: map[string]*x509.RevocationList{}, amdRoots: o.AMDRoots}
	if a.amdRoots == nil {
		var err error
		if a.amdRoots, err = snp.AMDRoots(); err != nil {
			return nil, err
		}
	}
	roots := intel.NewRoots(o.IntelRoot)
	sets := map[string]map[string][]byte{}
	for p, b := range o.New.Files {
		parts := strings.Split(p, "/")
		switch {
		case parts[0] == "intel":
			k := parts[1] + "/" + parts[2]
			if sets[k] == nil {
				sets[k] = map[string][]byte{}
			}
			sets[k][parts[3]] = b
		case parts[0] == "snp" && parts[1] == "crl":
			product, signer, _ := strings.Cut(strings.TrimSuffix(parts[2], ".der"), "-")
			r := a.amdRoots[product]
			if r == nil {
				continue
			}
			crl, err := x509.ParseRevocationList(b)
			if err != nil || crl.CheckSignatureFrom(r.ARK) != nil {
				return nil, fmt.Errorf("collateral diff: %s: not a CRL signed by ARK-%s", p, product)
			}
			a.amd[product+"/"+signer] = crl
		}
	}
	for k, files := range sets {
		c, err := intel.CollateralFromFiles(files)
		if err == nil {
			var vc *intel.Verified
			if vc, err = roots.VerifyCollateral(c, now); err == nil {
				a.intel[k] = vc
				continue
			}
		}
		a.intelErr[k] = err
	}
	return a, nil
}

// appraise returns the record's platform, its recorded and its new status; ok is false when the
// record cannot be appraised again.
func (a *appraiser) appraise(c *attest.Claims) (platform, was, would, because string, ok bool) {
	// The Azure schemes' claims are those of the SNP report or TD quote of the paravisor.
	switch c.TEE {
	case attest.TDX, azure.TDX:
		return a.tdx(c)
	case attest.SEVSNP, azure.SNP:
		return a.snp(c)
	}
	return "", "", "", "", false
}

func (a *appraiser) tdx(c *attest.Claims) (platform, was, would, because string, ok bool) {
	fmspc := c.Platform["fmspc"]
	comps, svn := c.Config["sgx_tcb_components"], c.Config["tee_tcb_svn"]
	pce, hasPCE := c.TCB["pce_svn"]
	qeSVN, hasQE := c.TCB["qe_svn"]
	if fmspc == "" || len(comps) != 16 || len(svn) != 16 || !hasPCE || !hasQE {
		return "", "", "", "", false
	}
	platform, was = "fmspc "+fmspc, c.TCBStatus
	k := "tdx/" + fmspc
	vc := a.intel[k]
	if vc == nil {
		if err := a.intelErr[k]; err != nil {
			return platform, was, "unknown", "new collateral does not verify: " + err.Error(), true
		}
		return platform, was, "unknown", "no collateral for this FMSPC in the new set", true
	}
	ext := &intel.PCKExtensions{PCESVN: uint16(pce)}
	copy(ext.TCBComponents[:], comps)
	ti := vc.TCBInfo
	seamAttr := make([]byte, 8)
	binary.LittleEndian.PutUint64(seamAttr, c.Attributes["seam_attributes"])
	modLevel, err := ti.TDXModuleLevel(svn, c.Measurements["mrsignerseam"], seamAttr)
	if err != nil {
		return platform, was, "refused", err.Error(), true
	}
	platLevel, err := ti.PlatformLevel(ext, svn)
	if err != nil {
		return platform, was, "refused", err.Error(), true
	}
	status, modStatus := platLevel.TCBStatus, intel.UpToDate
	if modLevel != nil {
		modStatus = modLevel.TCBStatus
		status = intel.Converge(status, modStatus)
	}
	qeStatus := intel.Status("")
	var qeLevel *intel.TCBLevel
	for i := range vc.QEIdentity.TCBLevels {
		if vc.QEIdentity.TCBLevels[i].TCB.ISVSVN <= int(qeSVN) {
			qeLevel = &vc.QEIdentity.TCBLevels[i]
			qeStatus = qeLevel.TCBStatus
			break
		}
	}
	if qeLevel == nil {
		return platform, was, "refused", fmt.Sprintf("QE SVN %d is below every level of the new QE identity", qeSVN), true
	}
	if svn2 := c.Config["tee_tcb_svn_2"]; len(svn2) == 16 && status != intel.Revoked {
		if sgxLevel, err := ti.PlatformLevel(ext, nil); err == nil {
			status = ti.Relaunch(svn2, sgxLevel.TCBStatus, status, modStatus, qeStatus)
		}
	}
	status = intel.Converge(status, qeStatus)
	adv := intel.Advisories(platLevel, modLevel, qeLevel)
	return platform, was, string(status), "tcbEvaluationDataNumber " + fmt.Sprint(ti.TCBEvaluationDataNumber) + intel.AdvisoryText(adv), true
}

func (a *appraiser) snp(c *attest.Claims) (platform, was, would, because string, ok bool) {
	product, signer := c.Platform["product"], c.Platform["signer"]
	r := a.amdRoots[product]
	if r == nil {
		return "", "", "", "", false
	}
	platform = product + " chip " + shortHex(c.Platform[snp.ClaimChipID])
	was = "accepted"
	crl := a.amd[product+"/"+signer]
	if crl == nil {
		return platform, was, was, "", true // the new set brings no CRL: nothing changes
	}
	ica, name := r.ASK, "ASK"
	if signer == snp.SignerVLEK {
		ica, name = r.ASVK, "ASVK"
	}
	for _, e := range crl.RevokedCertificateEntries {
		if ica != nil && e.SerialNumber != nil && e.SerialNumber.Cmp(ica.SerialNumber) == 0 {
			return platform, was, "revoked", fmt.Sprintf("the new ARK-%s CRL revokes the %s", product, name), true
		}
	}
	return platform, was, was, "", true
}

func shortHex(s string) string {
	if len(s) > 16 {
		return s[:16]
	}
	return s
}

// Write prints the report as text.
func (r *DiffReport) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "log size %d: %d accepted attestations appraised again, %d could not be\n", r.LogSize, r.Appraised, r.Skipped)
	if len(r.Changes) == 0 {
		fmt.Fprintln(tw, "no platform or image would change TCB status")
		return tw.Flush()
	}
	fmt.Fprintln(tw, "TEE\tPLATFORM\tIMAGE\tWAS\tWOULD BE\tRECORDS\tLAST SEEN\tBECAUSE")
	for _, c := range r.Changes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", c.TEE, c.Platform, shortImage(c.Image), c.Was, c.Would, c.Records,
			c.LastSeen.Format(time.RFC3339), c.Because)
	}
	return tw.Flush()
}

func shortImage(s string) string {
	if tee, m, ok := strings.Cut(s, ":"); ok && len(m) > 16 {
		return tee + ":" + m[:16]
	}
	return s
}
