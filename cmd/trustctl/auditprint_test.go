package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/audittest"
	"github.com/medicus-cloud/trust/audit/storage/posix"
)

// auditGolden compares got with testdata/audit/name (go test -update rewrites it).
func auditGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", "audit", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// seededLog opens a posix log whose note key comes from a fixed seed, so that the golden files
// are stable.
func seededLog(t *testing.T, dir string) *posix.Log {
	t.Helper()
	var s [32]byte
	s[0] = 1
	l, err := posix.Open(context.Background(), posix.Options{Dir: dir, Rand: rand.NewChaCha8(s)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendRecords appends recs one by one and publishes them, so that the directory shows them.
func appendRecords(t *testing.T, l *posix.Log, recs []*audit.Record) {
	t.Helper()
	for _, r := range recs {
		if _, err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Publish(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func readCheckpoint(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "log", "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAuditPrintGolden: what trustctl audit verify, prove, consistency and search print for a
// fixed log.
func TestAuditPrintGolden(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := seededLog(t, dir)
	defer l.Close()
	appendRecords(t, l, audittest.Records(0, 100))
	old := readCheckpoint(t, dir)
	appendRecords(t, l, audittest.Records(100, 300))
	src := auditor.Source{Log: dir, Key: l.VerifierKey()}
	t0 := audittest.T0

	var buf bytes.Buffer
	cp, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src, Trusted: old})
	if err != nil {
		t.Fatal(err)
	}
	if err := printVerified(&buf, cp); err != nil {
		t.Fatal(err)
	}
	auditGolden(t, "verify.golden", buf.Bytes())

	for _, idx := range []uint64{0, 5, 299} {
		buf.Reset()
		ip, err := auditor.Prove(ctx, auditor.ProveOptions{Source: src, Index: idx})
		if err != nil {
			t.Fatal(err)
		}
		if err := printJSON(&buf, ip); err != nil {
			t.Fatal(err)
		}
		auditGolden(t, fmt.Sprintf("prove-%03d.golden", idx), buf.Bytes())
	}

	buf.Reset()
	c, err := auditor.Consistency(ctx, auditor.ConsistencyOptions{Source: src, Old: old})
	if err != nil {
		t.Fatal(err)
	}
	if err := printJSON(&buf, c); err != nil {
		t.Fatal(err)
	}
	auditGolden(t, "consistency.golden", buf.Bytes())

	for _, tc := range []struct {
		name   string
		o      auditor.SearchOptions
		format string
	}{
		{"search-measurement.jsonl", auditor.SearchOptions{Measurement: strings.ToUpper(audittest.Record(2).Measurement), Until: t0.Add(30 * time.Second)}, formatJSONL},
		{"search-bare-name.jsonl", auditor.SearchOptions{Name: "dek/radiology-4", Event: audit.EventGenerateDataKey, Until: t0.Add(20 * time.Second)}, formatJSONL},
		{"search-name-deny.csv", auditor.SearchOptions{Name: "data_key:dek/radiology-3", Verdict: audit.VerdictDeny, Since: t0.Add(10 * time.Second), Until: t0.Add(100 * time.Second)}, formatCSV},
	} {
		buf.Reset()
		tc.o.Source = src
		ms, err := auditor.Search(ctx, tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if err := printRecords(&buf, ms, tc.format); err != nil {
			t.Fatal(err)
		}
		auditGolden(t, tc.name, buf.Bytes())
	}
}

// TestAuditWitnessGolden: the lines audit witness prints as the log grows.
func TestAuditWitnessGolden(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := seededLog(t, dir)
	defer l.Close()
	state := filepath.Join(t.TempDir(), "state")
	src := auditor.Source{Log: dir, Key: l.VerifierKey()}
	var out bytes.Buffer
	size := 0
	for _, n := range []int{0, 3, 3, 260, 600} {
		appendRecords(t, l, audittest.Records(size, n))
		size = max(size, n)
		r, err := auditor.Witness(ctx, auditor.WitnessOptions{Source: src, State: state, Full: true})
		if err != nil {
			t.Fatalf("at %d: %v", n, err)
		}
		if err := printWitness(&out, r); err != nil {
			t.Fatal(err)
		}
	}
	auditGolden(t, "witness.golden", out.Bytes())
}
