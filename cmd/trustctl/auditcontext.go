package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/internal/keyfile"
	"github.com/medicus-cloud/trust/kms"
)

// The audit context commands: make the deployment's context key, derive one tenant's key from
// it, and check a context against records offline (audit/contextkey.go has the construction).
func newAuditContextCmds() []*cobra.Command {
	var out string
	keygen := &cobra.Command{
		Use:   "context-keygen --out FILE",
		Short: "Make the audit context key that keys the context digests of audit records",
		Long: `Write 32 random bytes in hex to FILE (mode 0600). Give the file to every trustd replica as
audit.context_key_file, and to no one else: whoever holds it can test guessed contexts (tenant,
case, patient pseudonym) against the public log.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k := make([]byte, audit.ContextKeySize)
			if _, err := rand.Read(k); err != nil {
				return err
			}
			f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(f, hex.EncodeToString(k)); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote the audit context key to %s\n", out)
			return nil
		},
	}
	keygen.Flags().StringVar(&out, "out", "", "file for the key (must not exist)")
	keygen.MarkFlagRequired("out")

	var keyFile, tenant string
	tenantKey := &cobra.Command{
		Use:   "context-key --context-key FILE --tenant TENANT",
		Short: "Print one tenant's context key, for an auditor who may check that tenant's records only",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			k, err := readContextKey(keyFile)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), k.Tenant(tenant).Hex())
			return nil
		},
	}
	tenantKey.Flags().StringVar(&keyFile, "context-key", "", "the deployment's audit context key file")
	tenantKey.Flags().StringVar(&tenant, "tenant", "", "the tenant (the context's \"tenant\" value)")
	tenantKey.MarkFlagRequired("context-key")
	tenantKey.MarkFlagRequired("tenant")

	var (
		ckFile, tkFile, recordFile, digest string
		pairs                              []string
	)
	check := &cobra.Command{
		Use:   "check-context (--context-key FILE | --tenant-key FILE) (--records FILE | --digest HEX) --context KEY=VALUE...",
		Short: "Check, offline, whether audit records carry the context digest of a given context",
		Long: `Compute the keyed digest of the context given with --context (every key=value pair of the
release's context, including its tenant) and compare it with the context digest of each record
in FILE (JSON Lines as 'trustctl audit search' writes them, or canonical records one per line),
or with --digest. Needs the deployment's context key, or the tenant key that
'trustctl audit context-key' derives for the context's tenant. Exits 1 when nothing matches.
Neither the context nor the key is printed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			kc := kms.Context{}
			for i, p := range pairs {
				k, v, ok := strings.Cut(p, "=")
				if !ok {
					return fmt.Errorf("--context: argument %d is not KEY=VALUE", i+1)
				}
				if _, dup := kc[k]; dup {
					return fmt.Errorf("--context: key %q given twice", k)
				}
				kc[k] = v
			}
			if len(kc) == 0 {
				return errors.New("--context: at least one KEY=VALUE pair is required")
			}
			canon, err := kc.Canonical()
			if err != nil {
				return fmt.Errorf("--context: %w", err)
			}
			var tk *audit.TenantKey
			switch {
			case (ckFile == "") == (tkFile == ""):
				return errors.New("give exactly one of --context-key and --tenant-key")
			case ckFile != "":
				k, err := readContextKey(ckFile)
				if err != nil {
					return err
				}
				tk = k.Tenant(kc[audit.TenantField])
			default:
				b, err := keyfile.Read(tkFile, "--tenant-key")
				if err != nil {
					return err
				}
				if tk, err = audit.ParseTenantKey(kc[audit.TenantField], b); err != nil {
					return fmt.Errorf("--tenant-key: %w", err)
				}
			}
			w := cmd.OutOrStdout()
			switch {
			case (recordFile == "") == (digest == ""):
				return errors.New("give exactly one of --records and --digest")
			case digest != "":
				if !tk.Check(strings.ToLower(strings.TrimSpace(digest)), canon) {
					fmt.Fprintln(w, "no match: the digest is not this context's (or the key is another deployment's or tenant's)")
					return &exitError{code: 1, err: errors.New("no match"), quiet: true}
				}
				fmt.Fprintln(w, "match: the digest is this context's")
				return nil
			}
			recs, err := readRecords(recordFile)
			if err != nil {
				return err
			}
			matched, withDigest := 0, 0
			for _, r := range recs {
				if r.rec.ContextDigest == "" {
					continue
				}
				withDigest++
				if tk.Check(r.rec.ContextDigest, canon) {
					matched++
					fmt.Fprintf(w, "match: %s request_id %s event %s verdict %s time %s\n", r.where, r.rec.RequestID,
						r.rec.Event, r.rec.Verdict, r.rec.Time.UTC().Format("2006-01-02T15:04:05Z07:00"))
				}
			}
			fmt.Fprintf(w, "%d of %d records with a context digest match this context\n", matched, withDigest)
			if matched == 0 {
				return &exitError{code: 1, err: errors.New("no match"), quiet: true}
			}
			return nil
		},
	}
	check.Flags().StringVar(&ckFile, "context-key", "", "the deployment's audit context key file")
	check.Flags().StringVar(&tkFile, "tenant-key", "", "a tenant key file (from audit context-key)")
	check.Flags().StringVar(&recordFile, "records", "", "records to check: JSON Lines from audit search, or canonical records; - for stdin")
	check.Flags().StringVar(&digest, "digest", "", "a context digest to check instead of records")
	check.Flags().StringArrayVar(&pairs, "context", nil, "one KEY=VALUE pair of the context (repeat for each)")
	return []*cobra.Command{keygen, tenantKey, check}
}

func readContextKey(path string) (*audit.ContextKey, error) {
	b, err := keyfile.Read(path, "--context-key")
	if err != nil {
		return nil, err
	}
	k, err := audit.ParseContextKey(b)
	if err != nil {
		return nil, fmt.Errorf("--context-key %s: %w", path, err)
	}
	return k, nil
}

type namedRecord struct {
	where string
	rec   *audit.Record
}

// readRecords reads JSON Lines of {"index":N,"record":{...}} (audit search) or bare canonical
// records.
func readRecords(path string) ([]namedRecord, error) {
	f := os.Stdin
	if path != "-" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	var out []namedRecord
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 2*audit.MaxRecordSize)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var wrapped struct {
			Index  *uint64         `json:"index"`
			Record json.RawMessage `json:"record"`
		}
		where := fmt.Sprintf("line %d", line)
		raw := b
		if err := json.Unmarshal(b, &wrapped); err == nil && wrapped.Index != nil && wrapped.Record != nil {
			raw, where = wrapped.Record, fmt.Sprintf("record %d", *wrapped.Index)
		}
		r, err := audit.ParseRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		out = append(out, namedRecord{where: where, rec: r})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}
