package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
	"github.com/medicus-cloud/trust/policies"
)

func newRefValuesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "refvalues",
		Short: "Sign and verify a vendor's reference-value sets (*.refs.cose)",
		Long: `A vendor's build pipeline runs "trustctl measure", then "trustctl refvalues sign" with its
key, and ships the NAME.refs.cose file; the platform security team puts it into the policy
bundle, imports it through spec.referenceValues and trusts the vendor key for the image in
spec.images.`,
	}
	cmd.AddCommand(newRefValuesSignCmd(), newRefValuesVerifyCmd(), newRefValuesCoRIMCmd())
	return cmd
}

func newRefValuesSignCmd() *cobra.Command {
	var (
		keyFile, tee, out, notBefore, notAfter string
		set                                    policies.ReferenceValueSet
		measures, components                   []string
	)
	c := &cobra.Command{
		Use:   "sign --key KEY --image ID --version V --commit C --not-after T --tee TEE --measure FILE... [--component NAME=HEX]... [-o FILE]",
		Short: "Sign a reference-value set computed by trustctl measure",
		Long: `Each --measure FILE is one output of "trustctl measure snp|tdx" (a bare MEASUREMENT line, or
MRTD and RTMRn lines) and becomes one value of the set (for example one per vCPU count). The
--component digests (kernel, initrd, cmdline, shim, grub, uki.<section>: as the event log
extends them) apply to every value. Times are RFC 3339; --not-before defaults to now.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			pem, err := os.ReadFile(keyFile)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			key, err := policies.ParseSigningKey(pem)
			if err != nil {
				return fmt.Errorf("--key: %w", err)
			}
			set.APIVersion, set.Kind = policies.APIVersion, policies.ReferenceValueSetKind
			set.NotBefore = time.Now().UTC().Truncate(time.Second)
			if notBefore != "" {
				if set.NotBefore, err = time.Parse(time.RFC3339, notBefore); err != nil {
					return fmt.Errorf("--not-before: %w", err)
				}
			}
			if set.NotAfter, err = time.Parse(time.RFC3339, notAfter); err != nil {
				return fmt.Errorf("--not-after: %w", err)
			}
			t, err := schemes.ParseTEE(tee)
			if err != nil {
				return fmt.Errorf("--tee: %w", err)
			}
			comps := map[string]attest.Hex{}
			for _, kv := range components {
				k, v, ok := strings.Cut(kv, "=")
				d, err := hex.DecodeString(v)
				if !ok || err != nil {
					return fmt.Errorf("--component %q: want NAME=HEX", kv)
				}
				comps[k] = d
			}
			if len(measures) == 0 {
				return errors.New("--measure: give at least one output of trustctl measure")
			}
			for _, m := range measures {
				b, err := os.ReadFile(m)
				if err != nil {
					return fmt.Errorf("--measure: %w", err)
				}
				v, err := parseMeasureOutput(t, b)
				if err != nil {
					return fmt.Errorf("--measure %s: %w", m, err)
				}
				if len(comps) > 0 {
					v.Components = comps
				}
				set.Values = append(set.Values, *v)
			}
			signed, err := policies.SignReferenceValues(rand.Reader, key, &set)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(signed)
				return err
			}
			return os.WriteFile(out, signed, 0o644)
		},
	}
	f := c.Flags()
	f.StringVar(&keyFile, "key", "", "vendor signing key (PEM, ECDSA P-256 or Ed25519)")
	f.StringVar(&set.Image, "image", "", "image ID that policies name")
	f.StringVar(&set.Version, "version", "", "image version")
	f.StringVar(&set.SourceCommit, "commit", "", "source commit the image was built from")
	f.StringVar(&set.Source, "source", "", "source repository or build URL")
	f.StringVar(&notBefore, "not-before", "", "start of validity (RFC 3339; default now)")
	f.StringVar(&notAfter, "not-after", "", "end of validity (RFC 3339)")
	f.StringVar(&tee, "tee", "", "TEE type the measurements are for (sev-snp, tdx, sgx, insecure-simulated)")
	f.StringArrayVar(&measures, "measure", nil, "output of trustctl measure (repeatable: one value each)")
	f.StringArrayVar(&components, "component", nil, "boot component digest NAME=HEX (repeatable)")
	f.StringVarP(&out, "output", "o", "", "write the signed set here (default stdout)")
	for _, r := range []string{"key", "image", "version", "commit", "not-after", "tee"} {
		c.MarkFlagRequired(r)
	}
	return c
}

// parseMeasureOutput reads trustctl measure's output: a bare hex line (measure snp) or
// "NAME HEX" lines (measure tdx: MRTD, RTMR1, RTMR2).
func parseMeasureOutput(tee attest.TEE, b []byte) (*policies.ImageValues, error) {
	v := &policies.ImageValues{TEE: tee}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		name, hx := "MEASUREMENT", f[0]
		if len(f) == 2 {
			name, hx = f[0], f[1]
		} else if len(f) > 2 {
			return nil, fmt.Errorf("line %q: want HEX or NAME HEX", sc.Text())
		}
		d, err := hex.DecodeString(hx)
		if err != nil {
			return nil, fmt.Errorf("%s: not hex", name)
		}
		switch n := strings.ToLower(name); {
		case n == "measurement" || n == "mrtd":
			v.Measurement = d
		case strings.HasPrefix(n, "rtmr"):
			if v.Registers == nil {
				v.Registers = map[string]attest.Hex{}
			}
			v.Registers[n] = d
		default:
			return nil, fmt.Errorf("unknown line %s", name)
		}
	}
	if v.Measurement == nil {
		return nil, errors.New("no MEASUREMENT or MRTD line")
	}
	return v, nil
}

func newRefValuesVerifyCmd() *cobra.Command {
	var keyFile, at string
	c := &cobra.Command{
		Use:   "verify --vendor-key PUB FILE",
		Short: "Verify a signed reference-value set under a vendor key and print it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, kid, err := openSignedSet(keyFile, at, args[0])
			if err != nil {
				return err
			}
			printSet(cmd.OutOrStdout(), s, kid)
			return nil
		},
	}
	c.Flags().StringVar(&keyFile, "vendor-key", "", "vendor public key(s) (PEM)")
	c.Flags().StringVar(&at, "at", "", "check validity at this time (RFC 3339; default now)")
	c.MarkFlagRequired("vendor-key")
	return c
}

func printSet(w io.Writer, s *policies.ReferenceValueSet, kid string) {
	if kid != "" {
		fmt.Fprintf(w, "verified: signed by vendor key %s\n", kid)
	} else {
		fmt.Fprintln(w, "unsigned: sign it with trustctl refvalues sign before a policy can use it")
	}
	fmt.Fprintf(w, "image %s\nversion %s\ncommit %s\n", s.Image, s.Version, s.SourceCommit)
	if s.Source != "" {
		fmt.Fprintf(w, "source %s\n", s.Source)
	}
	fmt.Fprintf(w, "valid %s to %s\n", s.NotBefore.UTC().Format(time.RFC3339), s.NotAfter.UTC().Format(time.RFC3339))
	for _, v := range s.Values {
		fmt.Fprintf(w, "value %s measurement %s\n", v.TEE, v.Measurement)
		for _, k := range sortedMapKeys(v.Registers) {
			fmt.Fprintf(w, "  register %s %s\n", k, v.Registers[k])
		}
		for _, k := range sortedMapKeys(v.Components) {
			fmt.Fprintf(w, "  component %s %s\n", k, v.Components[k])
		}
	}
}

func sortedMapKeys(m map[string]attest.Hex) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func newRefValuesCoRIMCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "corim",
		Short: "Export a signed set as CoRIM, or import a CoRIM as a set to sign",
	}
	var keyFile, at, out string
	export := &cobra.Command{
		Use:   "export --vendor-key PUB FILE.refs.cose [-o FILE.corim]",
		Short: "Verify a signed set and write its values as an unsigned CoRIM (CBOR)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, _, err := openSignedSet(keyFile, at, args[0])
			if err != nil {
				return err
			}
			c, err := policies.ExportCoRIM(s)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(c)
				return err
			}
			return os.WriteFile(out, c, 0o644)
		},
	}
	export.Flags().StringVar(&keyFile, "vendor-key", "", "vendor public key(s) (PEM)")
	export.Flags().StringVar(&at, "at", "", "check validity at this time (RFC 3339; default now)")
	export.Flags().StringVarP(&out, "output", "o", "", "write the CoRIM here (default stdout)")
	export.MarkFlagRequired("vendor-key")
	imp := &cobra.Command{
		Use:   "import FILE.corim",
		Short: "Print a CoRIM (as corim export writes it) as the reference-value set it holds, unsigned",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			s, err := policies.ImportCoRIM(b)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			printSet(cmd.OutOrStdout(), s, "")
			return nil
		},
	}
	cmd.AddCommand(export, imp)
	return cmd
}

// openSignedSet verifies the signed set in path under the vendor keys in keyFile, with its
// validity checked at at (RFC 3339; empty means now).
func openSignedSet(keyFile, at, path string) (*policies.ReferenceValueSet, string, error) {
	pem, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, "", fmt.Errorf("--vendor-key: %w", err)
	}
	keys, err := policies.ParseTrustKeys(pem)
	if err != nil {
		return nil, "", fmt.Errorf("--vendor-key: %w", err)
	}
	now := time.Now()
	if at != "" {
		if now, err = time.Parse(time.RFC3339, at); err != nil {
			return nil, "", fmt.Errorf("--at: %w", err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	s, kid, err := policies.OpenReferenceValues(b, keys, now)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	return s, kid, nil
}
