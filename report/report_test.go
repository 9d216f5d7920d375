package report_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/report"
)

var update = flag.Bool("update", false, "rewrite golden files")

func writeLog(t *testing.T, ck *audit.ContextKey) auditor.Source {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "audit")
	ctx := context.Background()
	l, err := posix.Open(ctx, posix.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	td := func(tenant string) string {
		c, _ := kms.Context{"tenant": tenant}.Canonical()
		return ck.Digest(tenant, c)
	}
	m := strings.Repeat("ab", 48)
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	recs := []*audit.Record{
		{Event: "admin.register_consent_key", Verdict: "allow", Names: []string{"consent-key:ufr-1"}, ContextDigest: td("uk-freiburg"), Caller: "consent-admin CN=dpo serial 1"},
		{Event: audit.EventGenerateDataKey, TEE: "sev-snp", Measurement: m, Verdict: "allow", Policy: "ehr-viewer", PolicyDigest: "d1",
			Names: []string{"data_key:ehr/records"}, TenantDigest: td("uk-freiburg"), Purposes: []string{"treatment"}, ConsentID: "st-1", ConsentDigest: "c1"},
		{Event: audit.EventGenerateDataKey, TEE: "sev-snp", Measurement: m, Verdict: "allow", Policy: "ehr-viewer", PolicyDigest: "d1",
			Names: []string{"data_key:ehr/records"}, TenantDigest: td("uk-ulm"), Purposes: []string{"treatment"}, ConsentID: "st-9"},
		{Event: audit.EventUnwrapDataKey, TEE: "sev-snp", Measurement: m, Verdict: "deny", Policy: "ehr-viewer", PolicyDigest: "d1",
			Names: []string{"data_key:ehr/records"}, TenantDigest: td("uk-freiburg"), Purposes: []string{"treatment"}, ConsentID: "st-1"},
		{Event: audit.EventUnwrapDataKey, TEE: "sev-snp", Measurement: m, Verdict: "allow", Policy: "ehr-viewer", PolicyDigest: "d1",
			Names: []string{"data_key:ehr/records"}, TenantDigest: td("uk-freiburg"), Purposes: []string{"treatment"}, BreakGlassID: "br-01"},
	}
	for i, r := range recs {
		r.Time, r.RequestID = t0.Add(time.Duration(i)*time.Minute), "req"+string(rune('0'+i))
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	vkey, _ := os.ReadFile(filepath.Join(dir, "note.pub"))
	return auditor.Source{Log: dir, Key: strings.TrimSpace(string(vkey))}
}

func TestReportGolden(t *testing.T) {
	ck, _ := audit.NewContextKey(bytes.Repeat([]byte{4}, 32))
	src := writeLog(t, ck)
	rows, err := report.Run(context.Background(), report.Options{Source: src, Key: ck.Tenant("uk-freiburg"), Since: time.Date(2026, 11, 30, 8, 1, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	var csvOut, jsonOut bytes.Buffer
	report.WriteCSV(&csvOut, rows)
	report.WriteJSON(&jsonOut, "uk-freiburg", rows)
	for name, got := range map[string][]byte{"report.csv": csvOut.Bytes(), "report.json": jsonOut.Bytes()} {
		p := filepath.Join("testdata", name)
		if *update {
			os.WriteFile(p, got, 0o644)
		}
		want, _ := os.ReadFile(p)
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, want)
		}
	}
	// Another tenant's key finds only that tenant's records; a wrong key finds none.
	ulm, _ := report.Run(context.Background(), report.Options{Source: src, Key: ck.Tenant("uk-ulm")})
	if len(ulm) != 1 || ulm[0].ConsentID != "st-9" {
		t.Fatalf("uk-ulm rows %+v", ulm)
	}
	other, _ := audit.NewContextKey(bytes.Repeat([]byte{5}, 32))
	if rows, _ := report.Run(context.Background(), report.Options{Source: src, Key: other.Tenant("uk-freiburg")}); len(rows) != 0 {
		t.Fatalf("a foreign key read %d rows", len(rows))
	}
}

func TestReportTamperedLog(t *testing.T) {
	ck, _ := audit.NewContextKey(bytes.Repeat([]byte{4}, 32))
	src := writeLog(t, ck)
	filepath.Walk(src.Log, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			if bytes.Contains(b, []byte(`"st-9"`)) {
				os.WriteFile(p, bytes.ReplaceAll(b, []byte(`"st-9"`), []byte(`"st-8"`)), 0o600)
			}
		}
		return nil
	})
	var ee *tlog.EntryError
	if _, err := report.Run(context.Background(), report.Options{Source: src, Key: ck.Tenant("uk-freiburg")}); !errors.As(err, &ee) {
		t.Fatalf("tampered log: %v", err)
	}
}
