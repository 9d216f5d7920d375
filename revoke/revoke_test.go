package revoke

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/policies"
)

func snpClaims() *attest.Claims {
	return &attest.Claims{
		TEE:          attest.SEVSNP,
		Measurement:  attest.Hex{0xaa, 0xbb},
		Measurements: map[string]attest.Hex{"rtmr0": {0x01}},
		Config:       map[string]attest.Hex{"image_id": {0xcc}, "family_id": {0xdd}},
		TCB:          map[string]uint64{"snp": 20, "microcode": 200},
		Advisories:   []string{"INTEL-SA-00837"},
		Platform:     map[string]string{"chip_id": "c0ffee", "ppid": "0123"},
	}
}

func TestMatches(t *testing.T) {
	for _, tc := range []struct {
		r    Revocation
		want bool
	}{
		{Revocation{Kind: Measurement, Value: "AABB"}, true},
		{Revocation{Kind: Measurement, Value: "01"}, true},
		{Revocation{Kind: Measurement, Value: "aabc"}, false},
		{Revocation{Kind: Image, Value: "cc"}, true},
		{Revocation{Kind: Image, Value: "dd"}, true},
		{Revocation{Kind: Image, Value: "ee"}, false},
		{Revocation{Kind: TCB, Value: "snp:20"}, true},
		{Revocation{Kind: TCB, Value: "snp:19"}, false},
		{Revocation{Kind: TCB, Value: "bootloader:99"}, false},
		{Revocation{Kind: Advisory, Value: "INTEL-SA-00837"}, true},
		{Revocation{Kind: Advisory, Value: "INTEL-SA-00615"}, false},
		{Revocation{Kind: ChipID, Value: "C0FFEE"}, true},
		{Revocation{Kind: ChipID, Value: "c0ffef"}, false},
		{Revocation{Kind: PPID, Value: "0123"}, true},
		{Revocation{Kind: Measurement, Value: "aabb", TEE: "tdx"}, false},
		{Revocation{Kind: Measurement, Value: "aabb", TEE: "snp"}, true},
	} {
		r := tc.r
		if err := r.Normalize(); err != nil {
			t.Fatalf("%+v: %v", tc.r, err)
		}
		if got := r.Matches(snpClaims()); got != tc.want {
			t.Errorf("%+v matches = %v, want %v", tc.r, got, tc.want)
		}
	}
	// Azure's SEV-SNP claims are that chip's: a revocation scoped to sev-snp reaches them; one
	// scoped to azure-snp does not reach bare SEV-SNP.
	az := snpClaims()
	az.TEE = "azure-snp"
	for _, tc := range []struct {
		r      Revocation
		claims *attest.Claims
		want   bool
	}{
		{Revocation{Kind: ChipID, Value: "c0ffee", TEE: "sev-snp"}, az, true},
		{Revocation{Kind: TCB, Value: "snp:20", TEE: "sev-snp"}, az, true},
		{Revocation{Kind: ChipID, Value: "c0ffee", TEE: "azure-snp"}, az, true},
		{Revocation{Kind: ChipID, Value: "c0ffee", TEE: "azure-snp"}, snpClaims(), false},
		{Revocation{Kind: ChipID, Value: "c0ffee", TEE: "tdx"}, az, false},
	} {
		r := tc.r
		if err := r.Normalize(); err != nil {
			t.Fatalf("%+v: %v", tc.r, err)
		}
		if got := r.Matches(tc.claims); got != tc.want {
			t.Errorf("%+v matches %s claims = %v, want %v", tc.r, tc.claims.TEE, got, tc.want)
		}
	}
}

func TestNormalizeRefuses(t *testing.T) {
	for _, r := range []Revocation{
		{Kind: "colour", Value: "aa"},
		{Kind: Measurement, Value: ""},
		{Kind: Measurement, Value: "abc"},
		{Kind: ChipID, Value: "zz"},
		{Kind: TCB, Value: "snp"},
		{Kind: TCB, Value: "snp:99999999999999999999"},
		{Kind: Advisory, Value: "a b"},
		{Kind: PPID, Value: "aa", TEE: "vax"},
		{Kind: PPID, Value: "aa", ID: "XYZ"},
	} {
		if err := r.Normalize(); err == nil {
			t.Errorf("%+v accepted", r)
		}
	}
}

// Revocations survive a restart: a new Set over the same file enforces them.
func TestFileStoreSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "sub", "revocations.json")
	s, err := Open(ctx, &FileStore{Path: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(snpClaims()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, Revocation{Kind: ChipID, Value: "c0ffee", Reason: "key extracted"}); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, &FileStore{Path: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var d *policies.Denial
	if err := s2.Check(snpClaims()); !errors.As(err, &d) || d.Claim != "revocation" {
		t.Fatalf("after restart: %v", err)
	}
	if list, at := s2.List(); len(list) != 1 || list[0].Reason != "key extracted" || at.IsZero() {
		t.Fatalf("list %+v", list)
	}
}

type flaky struct {
	FileStore
	down bool
}

func (f *flaky) List(ctx context.Context) ([]Revocation, error) {
	if f.down {
		return nil, errors.New("down")
	}
	return f.FileStore.List(ctx)
}

func TestStaleFailsClosed(t *testing.T) {
	now := time.Unix(1e9, 0)
	st := &flaky{FileStore: FileStore{Path: filepath.Join(t.TempDir(), "r.json")}}
	s, err := Open(context.Background(), st, Options{Now: func() time.Time { return now }, PollInterval: time.Second, MaxStale: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	st.down = true
	now = now.Add(5 * time.Second)
	if err := s.Check(snpClaims()); err != nil {
		t.Fatalf("at max staleness: %v", err)
	}
	now = now.Add(time.Second)
	if err := s.Check(snpClaims()); !errors.Is(err, ErrStale) || !errors.Is(err, attest.ErrUnavailable) {
		t.Fatalf("past max staleness: %v", err)
	}
	st.down = false
	if err := s.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(snpClaims()); err != nil {
		t.Fatalf("after the store came back: %v", err)
	}
	if _, err := Open(context.Background(), st, Options{PollInterval: time.Minute, MaxStale: time.Second}); err == nil {
		t.Error("max staleness below the poll interval accepted")
	}
}

func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"revocations":[{"id":"0123456789abcdef","kind":"tcb","value":"snp:3","created":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"revocations":[{"kind":"measurement","value":"zz"}]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := parseFile(b)
		if err != nil {
			return
		}
		for _, r := range list {
			r.Matches(snpClaims())
			if r.Normalize() != nil {
				t.Fatalf("accepted a revocation that does not normalize: %+v", r)
			}
		}
	})
}
