package bundlepg_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/audit/storage/postgres/pgtest"
	"github.com/medicus-cloud/trust/collateral"
	"github.com/medicus-cloud/trust/collateral/bundlepg"
)

// TestStore: the row only moves forward by issue time, and two replicas see the same row.
func TestStore(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	open := func() *bundlepg.Store {
		s, err := bundlepg.Open(ctx, pg.DSN())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	a, b := open(), open()
	if got, err := b.Latest(ctx, ""); err != nil || got != nil {
		t.Fatalf("empty row: %v, %v", got, err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		put    bundlepg.Stored
		older  bool
		latest string // digest in the row after the put
	}{
		{"first", bundlepg.Stored{Issued: t0, Digest: "aa", KeyID: "k", Data: []byte("one")}, false, "aa"},
		{"same again", bundlepg.Stored{Issued: t0, Digest: "aa", KeyID: "k", Data: []byte("one")}, false, "aa"},
		{"same time, other digest", bundlepg.Stored{Issued: t0, Digest: "bb", KeyID: "k", Data: []byte("two")}, true, "aa"},
		{"older", bundlepg.Stored{Issued: t0.Add(-time.Second), Digest: "cc", KeyID: "k", Data: []byte("three")}, true, "aa"},
		{"newer", bundlepg.Stored{Issued: t0.Add(time.Hour), Digest: "dd", KeyID: "k2", Data: []byte("four")}, false, "dd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := a.Put(ctx, tc.put)
			if tc.older != errors.Is(err, collateral.ErrOlder) || !tc.older && err != nil {
				t.Fatalf("Put: %v, want older %v", err, tc.older)
			}
			got, err := b.Latest(ctx, "")
			if err != nil || got == nil || got.Digest != tc.latest {
				t.Fatalf("Latest on the other replica: %+v, %v; want %s", got, err, tc.latest)
			}
			if have, err := b.Latest(ctx, tc.latest); err != nil || have != nil {
				t.Errorf("Latest when the replica has it: %+v, %v; want nothing", have, err)
			}
		})
	}
	got, _ := b.Latest(ctx, "")
	if string(got.Data) != "four" || got.KeyID != "k2" || !got.Issued.Equal(t0.Add(time.Hour)) {
		t.Errorf("row %+v", got)
	}
}
