package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/audit/tlog"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/replay"
)

var update = flag.Bool("update", false, "rewrite golden files")

func meas(tag string) attest.Hex {
	m := make([]byte, 48)
	copy(m, tag)
	return m
}

func claimsJSON(t *testing.T, m attest.Hex, svn uint64) json.RawMessage {
	b, err := json.Marshal(&attest.Claims{TEE: attest.InsecureSimulated, Measurement: m, TCB: map[string]uint64{"guest_svn": svn}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeLog makes a local log of past decisions: two images attested, two releases of two
// tenants, one denial, one admin record.
func writeLog(t *testing.T, ck *audit.ContextKey) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "audit")
	ctx := context.Background()
	l, err := posix.Open(ctx, posix.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	a, b, c := meas("image a"), meas("image b"), meas("image c")
	td := func(tenant string) string {
		canon, _ := kms.Context{"tenant": tenant}.Canonical()
		return ck.Digest(tenant, canon)
	}
	recs := []*audit.Record{
		{Event: audit.EventAttest, TEE: "insecure-simulated", Measurement: a.String(), Verdict: "allow", Policy: "hello", Claims: claimsJSON(t, a, 1)},
		{Event: audit.EventAttest, TEE: "insecure-simulated", Measurement: b.String(), Verdict: "allow", Policy: "hello", Claims: claimsJSON(t, b, 3)},
		{Event: audit.EventGenerateDataKey, TEE: "insecure-simulated", Measurement: a.String(), Verdict: "allow", Policy: "hello",
			Names: []string{"data_key:hello/records"}, TenantDigest: td("uk-freiburg")},
		{Event: audit.EventGenerateDataKey, TEE: "insecure-simulated", Measurement: b.String(), Verdict: "allow", Policy: "hello",
			Names: []string{"data_key:hello/records"}, TenantDigest: td("uk-ulm")},
		{Event: audit.EventAttest, TEE: "insecure-simulated", Measurement: c.String(), Verdict: "deny", Claims: claimsJSON(t, c, 1)},
		{Event: "admin.create_key", Verdict: "allow", Names: []string{"hello/records"}},
	}
	for i, r := range recs {
		r.Time, r.RequestID = t0.Add(time.Duration(i)*time.Minute), "r"+string(rune('0'+i))
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The candidate keeps image b only, needs guest_svn 2 and no longer grants hello/records.
const candidate = `apiVersion: trust.medicus.cloud/v1
kind: ImagePolicy
metadata: {name: hello}
spec:
  tee: [insecure-simulated]
  measurements: ["%s"]
  require: {minTCB: {guest_svn: 2}}
  grants:
    dataKeys: [hello/other]
`

func TestDryRunGolden(t *testing.T) {
	ck, _ := audit.NewContextKey(bytes.Repeat([]byte{3}, 32))
	dir := writeLog(t, ck)
	vkey, _ := os.ReadFile(filepath.Join(dir, "note.pub"))
	src := auditor.Source{Log: dir, Key: strings.TrimSpace(string(vkey))}
	b, err := policies.Parse(map[string][]byte{"hello.yaml": []byte(strings.Replace(candidate, "%s", meas("image b").String(), 1))})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		golden string
		o      replay.Options
	}{
		{"dryrun.golden", replay.Options{Source: src, Bundle: b, TenantKeys: map[string]*audit.TenantKey{"uk-freiburg": ck.Tenant("uk-freiburg")}}},
		{"dryrun-since.golden", replay.Options{Source: src, Bundle: b, Since: time.Date(2026, 11, 30, 8, 2, 0, 0, time.UTC)}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			rep, err := replay.Run(context.Background(), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			rep.Write(&out)
			p := filepath.Join("testdata", tc.golden)
			if *update {
				os.WriteFile(p, out.Bytes(), 0o644)
			}
			want, _ := os.ReadFile(p)
			if !bytes.Equal(out.Bytes(), want) {
				t.Fatalf("report:\n%s\nwant:\n%s", out.Bytes(), want)
			}
		})
	}
}

func TestDryRunTamperedLog(t *testing.T) {
	ck, _ := audit.NewContextKey(bytes.Repeat([]byte{3}, 32))
	dir := writeLog(t, ck)
	vkey, _ := os.ReadFile(filepath.Join(dir, "note.pub"))
	tampered := false
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return nil
		}
		// Every copy of the entry bundle (the partial ones too): a tamperer rewrites them all.
		data, _ := os.ReadFile(p)
		if i := bytes.Index(data, []byte(`"verdict":"deny"`)); i >= 0 {
			copy(data[i:], `"verdict":"allo"`)
			os.WriteFile(p, data, 0o600)
			tampered = true
		}
		return nil
	})
	if !tampered {
		t.Fatal("found no record to tamper with")
	}
	b, _ := policies.Parse(map[string][]byte{"hello.yaml": []byte(strings.Replace(candidate, "%s", meas("image b").String(), 1))})
	_, err := replay.Run(context.Background(), replay.Options{Source: auditor.Source{Log: dir, Key: strings.TrimSpace(string(vkey))}, Bundle: b})
	var ee *tlog.EntryError
	if !errors.As(err, &ee) || ee.Index != 4 {
		t.Fatalf("tampered log: %v, want an entry error at 4", err)
	}
}
