package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/sdk/envelope"
	"github.com/medicus-cloud/trust/secret"
)

const tenant = "klinikum-sued"

// localKeys is a real local keyring in a temporary directory, standing in for trustd.
func localKeys(t *testing.T) envelope.KeySource {
	t.Helper()
	kr, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{3}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{VitalsKey, ScoresKey} {
		if err := kr.CreateKey(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	return envelope.FromKeyStore(kr)
}

func TestQSOFA(t *testing.T) {
	tests := []struct {
		rr, sbp, gcs, want int
	}{
		{16, 120, 15, 0},
		{22, 120, 15, 1},
		{21, 101, 15, 0},
		{16, 100, 15, 1},
		{16, 120, 14, 1},
		{24, 95, 15, 2},
		{30, 80, 9, 3},
	}
	for _, tc := range tests {
		if got := QSOFA(&Vitals{RespiratoryRate: tc.rr, SystolicBP: tc.sbp, GCS: tc.gcs}); got != tc.want {
			t.Errorf("QSOFA(RR %d, SBP %d, GCS %d) = %d, want %d", tc.rr, tc.sbp, tc.gcs, got, tc.want)
		}
	}
}

const goodRecord = `{"case":"sp-0001","time":"2026-11-24T06:00:00Z","respiratoryRate":24,"systolicBP":95,"gcs":15}`

func TestParseVitals(t *testing.T) {
	if v, err := ParseVitals([]byte(goodRecord)); err != nil || QSOFA(v) != 2 {
		t.Fatalf("%+v, %v", v, err)
	}
	for _, bad := range []string{
		``, `{}`, `[]`, goodRecord + `{}`,
		strings.Replace(goodRecord, `"gcs":15`, `"gcs":16`, 1),
		strings.Replace(goodRecord, `"gcs":15`, `"gcs":15,"name":"x"`, 1),
		strings.Replace(goodRecord, `"systolicBP":95`, `"systolicBP":0`, 1),
		strings.Replace(goodRecord, `"respiratoryRate":24`, `"respiratoryRate":200`, 1),
		strings.Replace(goodRecord, `"time":"2026-11-24T06:00:00Z",`, ``, 1),
		strings.Replace(goodRecord, `sp-0001`, `Max Mustermann`, 1),
	} {
		if _, err := ParseVitals([]byte(bad)); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

func FuzzParseVitals(f *testing.F) {
	f.Add([]byte(goodRecord))
	for _, v := range observations("sp-0003", 2, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		js, _ := json.Marshal(v)
		f.Add(js)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVitals(b)
		if err != nil {
			return
		}
		if q := QSOFA(v); q < 0 || q > 3 {
			t.Fatalf("qSOFA %d", q)
		}
		js, _ := json.Marshal(v)
		if _, err := ParseVitals(js); err != nil {
			t.Fatalf("accepted record does not re-parse: %v", err)
		}
	})
}

func seal(t *testing.T, ks envelope.KeySource, tenant, caseID string, v Vitals) []byte {
	t.Helper()
	js, _ := json.Marshal(v)
	ct, err := envelope.Encrypt(context.Background(), ks, VitalsKey, CaseContext(tenant, caseID, VitalsType), js)
	if err != nil {
		t.Fatal(err)
	}
	return ct
}

func TestScoreCase(t *testing.T) {
	ctx := context.Background()
	ks := localKeys(t)
	start := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	var recs [][]byte
	for _, v := range observations("sp-0003", 2, start) {
		recs = append(recs, seal(t, ks, tenant, "sp-0003", v))
	}
	s, ct, err := ScoreCase(ctx, ks, tenant, "sp-0003", recs)
	if err != nil || s.QSOFA != 3 || !s.Alert || s.BasedOn != 6 || !s.Time.Equal(start.Add(5*time.Hour)) {
		t.Fatalf("%+v, %v", s, err)
	}
	back, err := ReadScore(ctx, ks, tenant, "sp-0003", ct)
	if err != nil || *back != *s {
		t.Fatalf("ReadScore: %+v, %v", back, err)
	}
	// A score is not vital signs, and is bound to its case.
	if _, _, err := ScoreCase(ctx, ks, tenant, "sp-0003", [][]byte{ct}); !errors.Is(err, envelope.ErrWrongContext) {
		t.Fatalf("score read as vital signs: %v", err)
	}
	if _, err := ReadScore(ctx, ks, tenant, "sp-0004", ct); !errors.Is(err, envelope.ErrWrongContext) {
		t.Fatalf("score read for another case: %v", err)
	}

	tampered := bytes.Clone(recs[2])
	tampered[len(tampered)-3] ^= 1
	otherCase := seal(t, ks, tenant, "sp-0009", observations("sp-0009", 0, start)[0])
	// Right context, wrong case inside: only a writer holding the key could make it.
	inside := seal(t, ks, tenant, "sp-0003", observations("sp-0009", 0, start)[0])
	tests := []struct {
		name   string
		tenant string
		recs   [][]byte
		want   error
	}{
		{"tampered record", tenant, [][]byte{recs[0], tampered}, envelope.ErrChunkAuth},
		{"record of another case", tenant, [][]byte{recs[0], otherCase}, envelope.ErrWrongContext},
		{"case field disagrees", tenant, [][]byte{inside}, ErrBadRecord},
		{"another tenant", "klinikum-nord", recs, envelope.ErrWrongContext},
		{"not an envelope", tenant, [][]byte{[]byte(goodRecord)}, envelope.ErrNotEnvelope},
		{"no records", tenant, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, ct, err := ScoreCase(ctx, ks, tc.tenant, "sp-0003", tc.recs)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || s != nil || ct != nil {
				t.Fatalf("err = %v, want %v (score %+v)", err, tc.want, s)
			}
		})
	}
}

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := Demo(context.Background(), localKeys(t), tenant, 6, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "2 with qSOFA >= 2") || !strings.Contains(out.String(), "refused (not scored)") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
}

// TestPolicy keeps policy.yaml valid and granting what the example asks for.
func TestPolicy(t *testing.T) {
	b, err := policies.Load("policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name := "sepsis-scoring-example"
	for _, g := range []struct{ key, ctype string }{{VitalsKey, VitalsType}, {ScoresKey, ScoreType}} {
		if err := b.CheckContext(name, release.GrantDataKey, g.key, CaseContext(tenant, "sp-1", g.ctype)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.CheckContext(name, release.GrantDataKey, VitalsKey, CaseContext(tenant, "sp-1", ScoreType)); err == nil {
		t.Fatal("vitals key granted for scores")
	}
}
