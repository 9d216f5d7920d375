package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/seal"
)

func newAttestCmd(g *globals) *cobra.Command {
	var (
		dev         bool
		measurement string
		suite       string
		debug       bool
		svn         uint32
		format      string
	)
	cmd := &cobra.Command{
		Use:   "attest --dev [--measurement HEX]",
		Short: "Attest as a simulated workload and print the verdict and grants",
		Long: `Attest as a simulated workload (INSECURE simulated TEE, for a trustd started with --dev)
and print the verdict, the matched policy and the grants, or the denial with its reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dev {
				return errors.New("only simulated attestation is available from trustctl: pass --dev (workloads on real TEEs use the SDK)")
			}
			m, err := hex.DecodeString(measurement)
			if err != nil || len(m) > 48 {
				return fmt.Errorf("--measurement: want at most 48 bytes of hex")
			}
			if format != "text" && format != "json" {
				return fmt.Errorf("--format: %q, want text or json", format)
			}
			s := seal.X25519
			switch suite {
			case "x25519":
			case "mlkem768x25519":
				s = seal.MLKEM768X25519
			default:
				return fmt.Errorf("--suite: %q, want x25519 or mlkem768x25519", suite)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 30*time.Second)
			defer cancel()
			c, err := sdk.New(ctx, sdk.Options{Addr: g.addr, Insecure: true, Suite: s, JWT: true,
				Provider: simguest.NewInsecure(simguest.Options{Measurement: m, Debug: debug, SVN: svn})})
			if err != nil {
				return err
			}
			defer c.Close()
			att, err := c.Attest(ctx)
			if format == "json" {
				return printAttestationJSON(cmd.OutOrStdout(), att, err)
			}
			return printAttestation(cmd.OutOrStdout(), att, err)
		},
	}
	cmd.Flags().BoolVar(&dev, "dev", false, "use the INSECURE simulated TEE")
	cmd.Flags().StringVar(&measurement, "measurement", "", "simulated launch measurement (hex)")
	cmd.Flags().StringVar(&suite, "suite", "x25519", "ephemeral key suite: x25519 or mlkem768x25519")
	cmd.Flags().BoolVar(&debug, "debug", false, "claim a debug TEE")
	cmd.Flags().Uint32Var(&svn, "svn", 1, "simulated guest SVN")
	cmd.Flags().StringVar(&format, "format", "text", "output: text, or json with both token forms (cwt as base64url, jwt)")
	return cmd
}

func printAttestation(w io.Writer, att *sdk.Attestation, err error) error {
	var d *sdk.DeniedError
	if errors.As(err, &d) {
		fmt.Fprintf(w, "verdict: DENIED\n")
		if d.Claim != "" {
			fmt.Fprintf(w, "  claim:    %s\n  seen:     %s\n  expected: %s\n", d.Claim, d.Seen, d.Expected)
		}
		if d.Policy != "" {
			fmt.Fprintf(w, "  policy:   %s\n", d.Policy)
		}
		return &exitError{code: 2, err: errors.New("attestation denied")}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "verdict: %s\n", att.Policy)
	fmt.Fprintf(w, "  tee:           %s\n  measurement:   %s\n  policy digest: %x\n  token expires: %s\n",
		att.Claims.TEE, att.Claims.Measurement, att.PolicyDigest, att.ExpiresAt.UTC().Format(time.RFC3339))
	for _, gr := range att.Grants {
		fmt.Fprintf(w, "  grant:         %s %s\n", gr.Kind, gr.Name)
	}
	return nil
}

// attestationJSON is the --format json output: the verdict and grants beside both token forms.
type attestationJSON struct {
	Verdict      string      `json:"verdict"`
	RequestID    string      `json:"request_id,omitempty"`
	Policy       string      `json:"policy,omitempty"`
	PolicyDigest string      `json:"policy_digest,omitempty"`
	TEE          string      `json:"tee,omitempty"`
	Measurement  string      `json:"measurement,omitempty"`
	ExpiresAt    string      `json:"expires_at,omitempty"`
	Grants       []grantJSON `json:"grants,omitempty"`
	// CWT is base64url without padding; JWT is the JWS compact form.
	CWT    string      `json:"cwt,omitempty"`
	JWT    string      `json:"jwt,omitempty"`
	Denial *denialJSON `json:"denial,omitempty"`
}

type grantJSON struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

type denialJSON struct {
	Claim    string `json:"claim,omitempty"`
	Seen     string `json:"seen,omitempty"`
	Expected string `json:"expected,omitempty"`
	Policy   string `json:"policy,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

func printAttestationJSON(w io.Writer, att *sdk.Attestation, err error) error {
	var out attestationJSON
	var d *sdk.DeniedError
	switch {
	case errors.As(err, &d):
		out = attestationJSON{Verdict: "denied", Denial: &denialJSON{Claim: d.Claim, Seen: d.Seen, Expected: d.Expected, Policy: d.Policy, Reason: d.Reason}}
		err = &exitError{code: 2, err: errors.New("attestation denied")}
	case err != nil:
		return err
	default:
		out = attestationJSON{Verdict: "affirming", RequestID: att.RequestID, Policy: att.Policy,
			PolicyDigest: hex.EncodeToString(att.PolicyDigest), ExpiresAt: att.ExpiresAt.UTC().Format(time.RFC3339),
			CWT: base64.RawURLEncoding.EncodeToString(att.Token), JWT: att.JWT}
		if att.Claims != nil {
			out.TEE, out.Measurement = string(att.Claims.TEE), att.Claims.Measurement.String()
		}
		for _, g := range att.Grants {
			out.Grants = append(out.Grants, grantJSON{Kind: string(g.Kind), Name: g.Name})
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if jerr := enc.Encode(out); jerr != nil {
		return jerr
	}
	return err
}
