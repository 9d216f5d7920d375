package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/intel"
	"github.com/medicus-cloud/trust/attest/schemes"
)

// evidenceResult is the one JSON object `evidence verify --format json` prints.
type evidenceResult struct {
	Verified    bool   `json:"verified"`
	TEE         string `json:"tee"`
	Measurement string `json:"measurement,omitempty"`
	TCBStatus   string `json:"tcb_status,omitempty"`
	Error       string `json:"error,omitempty"`
	// PCRs are the quoted vTPM PCRs (azure-snp, azure-tdx) by index, lowercase hex.
	PCRs map[uint32]attest.Hex `json:"pcrs,omitempty"`
	// ReportData is what the evidence binds (Claims.ReportData): REPORT_DATA, or for a vTPM
	// quote its qualifying data.
	ReportData attest.Hex `json:"report_data,omitempty"`
	// Warnings name properties of verified evidence that trustd refuses whatever a policy says
	// (a debug guest outside --dev), or that policies deny unless they accept them.
	Warnings []string       `json:"warnings,omitempty"`
	Claims   *attest.Claims `json:"claims,omitempty"`

	EventLog *eventLogResult `json:"event_log,omitempty"` // --event-log: evidence_eventlog.go
}

func newEvidenceCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "evidence", Short: "Verify captured TEE evidence offline"}
	var (
		tee, at, format string
		online          bool
		values          = map[string]*string{}
		bools           = map[string]*bool{}

		el eventLogFlags
	)
	verify := &cobra.Command{
		Use:   "verify --tee " + strings.Join(fileTEEs(), "|") + " [scheme options] [--at TIME] [--format json] FILE",
		Short: "Verify a raw SNP report (optionally followed by its certificate table), TDX quote or SGX quote",
		Long: `Verify captured evidence as trustd would (authenticity: signatures, certificate chains,
revocation, collateral) and print its claims. Exit status 0 only when verified. Authentic
evidence of a debug guest is verified, with debug true and a warning: trustd refuses debug
guests outside --dev whatever a policy says.

--at verifies at a past time, so evidence captured then is checked against the certificates and
collateral valid then. Nothing touches the network unless --online is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			set := map[string]string{}
			for n, v := range values {
				if cmd.Flags().Changed(n) {
					set[n] = *v
				}
			}
			for n, b := range bools {
				if cmd.Flags().Changed(n) && *b {
					set[n] = "true"
				}
			}
			res := verifyEvidence(cmd.Context(), tee, args[0], set, at, online)
			el.apply(res)
			if err := printEvidence(cmd.OutOrStdout(), format, res); err != nil {
				return err
			}
			if !res.Verified {
				// The report above already says why.
				return &exitError{code: 1, err: errors.New("not verified"), quiet: true}
			}
			return nil
		},
	}
	verify.Flags().StringVar(&tee, "tee", "", "TEE type: "+strings.Join(fileTEEs(), ", "))
	// Each scheme's own options; a flag that two schemes share (--collateral) is registered once.
	for _, s := range schemes.All {
		if s.File == nil {
			continue
		}
		for _, f := range s.File.Flags {
			if verify.Flags().Lookup(f.Name) != nil {
				continue
			}
			if f.Bool {
				bools[f.Name] = verify.Flags().Bool(f.Name, false, f.Usage)
			} else {
				values[f.Name] = verify.Flags().String(f.Name, "", f.Usage)
			}
		}
	}
	verify.Flags().StringVar(&at, "at", "", "verification time, RFC 3339 (default now)")
	verify.Flags().StringVar(&format, "format", "text", "output: text or json")
	verify.Flags().BoolVar(&online, "online", false, "fetch missing certificates, CRLs and collateral from AMD or Intel")
	el.register(verify)
	verify.MarkFlagRequired("tee")
	cmd.AddCommand(verify)
	return cmd
}

// fileTEEs names the schemes that verify evidence files, in their short spelling.
func fileTEEs() []string {
	var out []string
	for _, s := range schemes.All {
		if s.File != nil {
			out = append(out, s.Section)
		}
	}
	return out
}

// verifyEvidence verifies file as TEE teeName; set holds the scheme options given on the
// command line ("true" for a boolean one).
func verifyEvidence(ctx context.Context, teeName, file string, set map[string]string, at string, online bool) *evidenceResult {
	res := &evidenceResult{TEE: teeName}
	fail := func(err error) *evidenceResult { res.Error = err.Error(); return res }
	tee, err := schemes.ParseTEE(teeName)
	if err != nil {
		return fail(err)
	}
	res.TEE = string(tee)
	s := schemes.ByTEE(tee)
	if s.File == nil {
		return fail(fmt.Errorf("--tee: %s evidence has no offline verifier", tee))
	}
	if err := schemeFlags(s, set); err != nil {
		return fail(err)
	}
	opts := attest.Options{}
	if at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return fail(fmt.Errorf("--at: %w", err))
		}
		opts.Now = t
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return fail(err)
	}
	ev, v, err := s.File.Verifier(raw, attest.FileOptions{Online: online, Values: set})
	if err != nil {
		return fail(err)
	}
	c, err := v.Verify(ctx, ev, opts)
	if err != nil {
		return fail(err)
	}
	return verified(res, c)
}

// schemeFlags refuses options of other schemes, naming whose they are and what s takes.
func schemeFlags(s *attest.Scheme, set map[string]string) error {
	mine := map[string]bool{}
	var takes []string
	for _, f := range s.File.Flags {
		mine[f.Name] = true
		takes = append(takes, "--"+f.Name)
	}
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if mine[n] {
			continue
		}
		var owners []string
		for _, o := range schemes.All {
			if o.File == nil {
				continue
			}
			for _, f := range o.File.Flags {
				if f.Name == n {
					owners = append(owners, o.Section)
				}
			}
		}
		what := "no options"
		if len(takes) > 0 {
			what = strings.Join(takes, " and ")
		}
		return fmt.Errorf("--%s is for %s; %s takes %s", n, strings.Join(owners, " and "), strings.ToUpper(string(s.TEE)), what)
	}
	return nil
}

// verified fills res for authentic evidence with claims c. Authenticity is all verification
// decides: a debug guest's evidence is verified, and the warning says what trustd will do with it.
func verified(res *evidenceResult, c *attest.Claims) *evidenceResult {
	res.Verified, res.Claims = true, c
	res.Measurement, res.TCBStatus = c.Measurement.String(), c.TCBStatus
	res.PCRs, res.ReportData = c.PCRs(), c.ReportData
	if res.TCBStatus == "" && schemes.Hardware(c.TEE) != attest.SEVSNP {
		res.TCBStatus = "unknown"
	}
	if c.Debug {
		res.Warnings = append(res.Warnings, "debug guest: the host can read its memory; trustd refuses it outside --dev whatever a policy says")
	}
	return res
}

func printEvidence(w io.Writer, format string, r *evidenceResult) error {
	switch format {
	case "json":
		if !r.Verified {
			// What did not verify binds nothing (an event log that does not replay unverifies).
			r.PCRs, r.ReportData = nil, nil
		}
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "text":
	default:
		return fmt.Errorf("--format: %q, want text or json", format)
	}
	if !r.Verified {
		fmt.Fprintf(w, "NOT VERIFIED (%s): %s\n", r.TEE, r.Error)
		return nil
	}
	c := r.Claims
	fmt.Fprintf(w, "VERIFIED %s evidence\n", r.TEE)
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "  WARNING: %s\n", warn)
	}
	fmt.Fprintf(w, "  measurement  %s\n", c.Measurement)
	if r.TCBStatus != "" {
		fmt.Fprintf(w, "  tcb_status   %s %v\n", r.TCBStatus, c.Advisories)
	}
	fmt.Fprintf(w, "  debug %v  migration %v  platform_smt_enabled %v", c.Debug, c.Migration, c.PlatformSMTEnabled)
	if c.PolicySMTAllowed != nil {
		fmt.Fprintf(w, "  policy_smt_allowed %v", *c.PolicySMTAllowed)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  report_data  %s\n", c.ReportData)
	printMap := func(title string, m map[string]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %-12s %s = %s\n", title, k, m[k])
		}
	}
	hexes := func(m map[string]attest.Hex) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = v.String()
		}
		return out
	}
	nums := func(m map[string]uint64) map[string]string {
		out := map[string]string{}
		for k, v := range m {
			out[k] = fmt.Sprint(v)
		}
		return out
	}
	printMap("measurement", hexes(c.Measurements))
	printMap("config", hexes(c.Config))
	printMap("tcb", nums(c.TCB))
	printMap("attribute", nums(c.Attributes))
	printMap("platform", c.Platform)
	return nil
}

func newCollateralCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "collateral", Short: "Fetch Intel collateral for offline verification; bundle collateral for air-gapped sites"}
	var (
		fmspc, out, pcsURL, ca string
		forSGX                 bool
	)
	fetch := &cobra.Command{
		Use:   "fetch --fmspc HEX --out DIR [--sgx] [--pcs-url URL]",
		Short: "Write Intel's TCB info, QE identity and CRLs for one platform (FMSPC) into DIR",
		Long: `Fetch collateral from Intel's PCS (or a PCCS) and write it in the collateral directory
layout that trustd and 'trustctl evidence verify --collateral' read: tcbinfo.json,
qeidentity.json, tcbinfo_chain.pem, qeidentity_chain.pem, pckcrl.der, pckcrl_chain.pem,
rootcrl.der. Everything fetched is verified before it is written.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			if err := intel.Fetch(ctx, intel.FetchOptions{BaseURL: pcsURL, SGX: forSGX, CA: ca}, fmspc, out); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote collateral for FMSPC %s to %s\n", fmspc, out)
			return nil
		},
	}
	fetch.Flags().StringVar(&fmspc, "fmspc", "", "platform FMSPC (12 hex digits)")
	fetch.Flags().StringVar(&out, "out", "", "output directory")
	fetch.Flags().StringVar(&pcsURL, "pcs-url", "", "Intel PCS or PCCS base URL (default Intel's PCS)")
	fetch.Flags().BoolVar(&forSGX, "sgx", false, "fetch SGX TCB info instead of TDX")
	fetch.Flags().StringVar(&ca, "ca", "", "PCK CA whose CRL to fetch: platform or processor (default: the service's default)")
	fetch.MarkFlagRequired("fmspc")
	fetch.MarkFlagRequired("out")
	cmd.AddCommand(fetch)
	addCollateralBundleCmds(cmd)
	cmd.AddCommand(newCollateralImportCmd(g))
	return cmd
}
