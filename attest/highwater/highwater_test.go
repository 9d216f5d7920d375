package highwater_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/highwater"
	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
)

func TestHighWater(t *testing.T) {
	ctx := context.Background()
	stores := map[string]func(t *testing.T) (a, b attest.HighWater){
		"memory": func(*testing.T) (attest.HighWater, attest.HighWater) { m := &highwater.Mem{}; return m, m },
		"postgres": func(t *testing.T) (attest.HighWater, attest.HighWater) {
			pg := pgtest.Start(t)
			open := func() attest.HighWater {
				h, err := highwater.OpenPG(ctx, pg.DSN())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { h.Close() })
				return h
			}
			return open(), open() // two replicas
		},
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		replica int
		key     string
		issued  time.Time
		number  int64
		older   bool
	}{
		{0, "sev-snp/Milan/crl-vcek", t0, 1, false},
		{1, "sev-snp/Milan/crl-vcek", t0, 1, false}, // the same CRL again
		{1, "sev-snp/Milan/crl-vcek", t0.Add(time.Hour), 2, false},
		{0, "sev-snp/Milan/crl-vcek", t0, 1, true},                       // older date and number
		{0, "sev-snp/Milan/crl-vcek", t0.Add(2 * time.Hour), 1, true},    // newer date, older number
		{0, "sev-snp/Milan/crl-vcek", t0.Add(30 * time.Minute), 3, true}, // newer number, older date
		{0, "sev-snp/Milan/crl-vcek", t0.Add(2 * time.Hour), -1, false},  // no number: the date decides
		{0, "sev-snp/Genoa/crl-vcek", t0, 1, false},                      // another key
		{1, "tdx/00806f050000/platform/tcb-info", time.Time{}, 17, false},
		{0, "tdx/00806f050000/platform/tcb-info", time.Time{}, 16, true},
		{0, "tdx/00806f050000/platform/tcb-info", time.Time{}, 18, false},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			a, b := open(t)
			hs := []attest.HighWater{a, b}
			for i, s := range steps {
				err := hs[s.replica].Advance(ctx, s.key, s.issued, s.number)
				if got := errors.Is(err, attest.ErrOlderCollateral); got != s.older || err != nil && !s.older {
					t.Errorf("step %d (%s %v #%d): err %v, want older=%v", i, s.key, s.issued, s.number, err, s.older)
				}
			}
		})
	}
}
