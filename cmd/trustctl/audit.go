package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/storage/postgres"
	"github.com/medicus-cloud/trust/audit/tlog"
)

type auditFlags struct {
	log, key string
}

func (a *auditFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&a.log, "log", "", "the audit log: a directory (trustd's data-dir/audit, or a copy) or an http(s) URL of trustd's read endpoint")
	cmd.PersistentFlags().StringVar(&a.key, "key", "", "the log's note verifier key, or @FILE; obtain it out of band (default: note.pub beside a local log)")
}

// source resolves the flags. A key read from beside the log proves only that the log is
// consistent with itself; an auditor passes the key published by the operator.
func (a *auditFlags) source(cmd *cobra.Command) (auditor.Source, error) {
	if a.log == "" {
		return auditor.Source{}, errors.New("--log is required")
	}
	key := a.key
	if strings.HasPrefix(key, "@") {
		b, err := os.ReadFile(key[1:])
		if err != nil {
			return auditor.Source{}, fmt.Errorf("--key: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" && !strings.Contains(a.log, "://") {
		for _, p := range []string{filepath.Join(a.log, "note.pub"), filepath.Join(a.log, "..", "note.pub")} {
			if b, err := os.ReadFile(p); err == nil {
				key = strings.TrimSpace(string(b))
				fmt.Fprintf(cmd.ErrOrStderr(), "note: using the verifier key in %s; pass --key with the operator's published key for an independent check\n", p)
				break
			}
		}
	}
	if key == "" {
		return auditor.Source{}, errors.New("--key is required: the log's note verifier key")
	}
	return auditor.Source{Log: a.log, Key: key}, nil
}

func newAuditCmd() *cobra.Command {
	af := &auditFlags{}
	cmd := &cobra.Command{Use: "audit", Short: "Check the transparency log of attestation decisions and key releases"}
	af.register(cmd)

	var trusted string
	verify := &cobra.Command{
		Use:   "verify --log DIR|URL [--key KEY] [--trusted CHECKPOINT]",
		Short: "Check the checkpoint signature, recompute the tree and parse every record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := af.source(cmd)
			if err != nil {
				return err
			}
			o := auditor.VerifyOptions{Source: src}
			if trusted != "" {
				if o.Trusted, err = os.ReadFile(trusted); err != nil {
					return err
				}
			}
			cp, err := auditor.Verify(cmd.Context(), o)
			if err != nil {
				return err
			}
			return printVerified(cmd.OutOrStdout(), cp)
		},
	}
	verify.Flags().StringVar(&trusted, "trusted", "", "a checkpoint seen earlier: the log must be consistent with it")

	var index uint64
	prove := &cobra.Command{
		Use:   "prove --log DIR|URL --index N",
		Short: "Print an inclusion proof of record N against the current checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := af.source(cmd)
			if err != nil {
				return err
			}
			ip, err := auditor.Prove(cmd.Context(), auditor.ProveOptions{Source: src, Index: index})
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), ip)
		},
	}
	prove.Flags().Uint64Var(&index, "index", 0, "record index")
	prove.MarkFlagRequired("index")

	var old string
	consistency := &cobra.Command{
		Use:   "consistency --log DIR|URL --old CHECKPOINT",
		Short: "Prove that the log only grew since an older checkpoint",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := af.source(cmd)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(old)
			if err != nil {
				return err
			}
			c, err := auditor.Consistency(cmd.Context(), auditor.ConsistencyOptions{Source: src, Old: b})
			if err != nil {
				return err
			}
			return printJSON(cmd.OutOrStdout(), c)
		},
	}
	consistency.Flags().StringVar(&old, "old", "", "file holding the older checkpoint")
	consistency.MarkFlagRequired("old")

	var (
		so           auditor.SearchOptions
		since, until string
		format       string
	)
	search := &cobra.Command{
		Use:   "search --log DIR|URL [--measurement HEX] [--name NAME] [--verdict V] [--event E] [--since T] [--until T] [--format jsonl|csv]",
		Short: "Export matching records as JSON Lines or CSV",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != formatJSONL && format != formatCSV {
				return fmt.Errorf("audit: format %q is not jsonl or csv", format)
			}
			src, err := af.source(cmd)
			if err != nil {
				return err
			}
			so.Source = src
			for _, t := range []struct {
				flag, v string
				into    *time.Time
			}{{"--since", since, &so.Since}, {"--until", until, &so.Until}} {
				if t.v == "" {
					continue
				}
				if *t.into, err = time.Parse(time.RFC3339, t.v); err != nil {
					return fmt.Errorf("%s: %w", t.flag, err)
				}
			}
			ms, err := auditor.Search(cmd.Context(), so)
			if err != nil {
				return err
			}
			return printRecords(cmd.OutOrStdout(), ms, format)
		},
	}
	search.Flags().StringVar(&so.Measurement, "measurement", "", "launch measurement (hex)")
	search.Flags().StringVar(&so.Name, "name", "", "released name")
	search.Flags().StringVar(&so.Verdict, "verdict", "", "allow, deny or error")
	search.Flags().StringVar(&so.Event, "event", "", "attest, attest_unverified, get_secret, generate_data_key, unwrap_data_key, or an admin event such as admin.put_secret")
	search.Flags().StringVar(&since, "since", "", "from this time (RFC 3339)")
	search.Flags().StringVar(&until, "until", "", "before this time (RFC 3339)")
	search.Flags().StringVar(&format, "format", formatJSONL, "jsonl or csv")

	var wo auditor.WitnessOptions
	witness := &cobra.Command{
		Use:   "witness --log DIR|URL --state FILE [--full]",
		Short: "Accept the log's checkpoint only if it is consistent with the last one seen, and remember it",
		Long: `Run on a schedule by a second party (see audit/README.md): the state file keeps the last
checkpoint this witness accepted; a new checkpoint that is not an extension of it (a fork, a
rewritten or shrunk log) is refused with a non-zero exit.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			src, err := af.source(cmd)
			if err != nil {
				return err
			}
			wo.Source = src
			r, err := auditor.Witness(cmd.Context(), wo)
			if err != nil {
				return err
			}
			return printWitness(cmd.OutOrStdout(), r)
		},
	}
	witness.Flags().StringVar(&wo.State, "state", "", "state file of this witness")
	witness.Flags().BoolVar(&wo.Full, "full", false, "also recompute the whole tree and parse every record")
	witness.MarkFlagRequired("state")

	var proofFile, checkpointFile string
	checkProof := &cobra.Command{
		Use:   "check-proof --proof FILE --checkpoint FILE --key KEY",
		Short: "Check a saved inclusion proof (from audit prove) against a signed checkpoint, offline",
		Long: `Check, without the log, that a record is in it: the proof (as 'trustctl audit prove'
writes it) must name the checkpoint given, the checkpoint must be signed by the log's key, and
the record must hash into the checkpoint's root. Prints the record.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			key := af.key
			if strings.HasPrefix(key, "@") {
				b, err := os.ReadFile(key[1:])
				if err != nil {
					return fmt.Errorf("--key: %w", err)
				}
				key = strings.TrimSpace(string(b))
			}
			if key == "" {
				return errors.New("--key is required: the log's note verifier key")
			}
			pb, err := os.ReadFile(proofFile)
			if err != nil {
				return err
			}
			cp, err := os.ReadFile(checkpointFile)
			if err != nil {
				return err
			}
			ip, err := auditor.ParseInclusionProof(pb)
			if err != nil {
				return err
			}
			r, err := auditor.VerifyInclusion(ip, cp, key)
			if err != nil {
				return err
			}
			b, err := audit.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "ok: record %d is in %s at size %d\n%s\n", ip.Index, ip.Origin, ip.Size, b)
			return nil
		},
	}
	checkProof.Flags().StringVar(&proofFile, "proof", "", "inclusion proof file (JSON from audit prove)")
	checkProof.Flags().StringVar(&checkpointFile, "checkpoint", "", "the signed checkpoint the proof names")
	checkProof.MarkFlagRequired("proof")
	checkProof.MarkFlagRequired("checkpoint")

	var keyOut, origin string
	keygen := &cobra.Command{
		Use:   "keygen --out FILE [--origin NAME]",
		Short: "Make the note signing key that trustd replicas share for a PostgreSQL audit log",
		Long: `Write a new checkpoint signing key to FILE (mode 0600; give it to every replica as
audit.key_file) and print its verifier key, which the operator publishes to auditors.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			skey, vkey, err := postgres.GenerateKey(rand.Reader, origin)
			if err != nil {
				return err
			}
			f, err := os.OpenFile(keyOut, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(f, skey); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), vkey)
			return nil
		},
	}
	keygen.Flags().StringVar(&keyOut, "out", "", "file for the signing key (must not exist)")
	keygen.Flags().StringVar(&origin, "origin", tlog.DefaultOrigin, "the log's name, as it appears in checkpoints")
	keygen.MarkFlagRequired("out")

	cmd.AddCommand(verify, prove, consistency, search, witness, checkProof, keygen)
	cmd.AddCommand(newAuditContextCmds()...)
	cmd.AddCommand(newAuditReportCmd(af))
	return cmd
}
