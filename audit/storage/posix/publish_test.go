package posix

import (
	"context"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medicus-cloud/trust/audit/audittest"
	"github.com/medicus-cloud/trust/audit/tlog"
)

// TestHandlerShowsAcknowledged: publication is off the append path, but a client that fetches
// the checkpoint through the handler after an Append returned always finds the record in it.
func TestHandlerShowsAcknowledged(t *testing.T) {
	ctx := context.Background()
	l, err := Open(ctx, Options{Dir: t.TempDir(), PublishInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := httptest.NewServer(l.Handler())
	defer srv.Close()
	for i := range 5 {
		if _, err := l.Append(ctx, audittest.Record(i)); err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Get(srv.URL + "/checkpoint")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cp, err := tlog.OpenCheckpoint(b, l.VerifierKey())
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != uint64(i+1) {
			t.Fatalf("checkpoint after %d appends has size %d", i+1, cp.Size)
		}
	}
}

// TestPublicationCoalesces: batches committed within one interval are published together, each
// tile once in its newest width, not one partial tile per batch.
func TestPublicationCoalesces(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := Open(ctx, Options{Dir: dir, PublishInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.Publish(ctx); err != nil { // the first publication goes out at once
		t.Fatal(err)
	}
	for i := range 40 {
		if _, err := l.Append(ctx, audittest.Record(i)); err != nil { // 40 batches of one
			t.Fatal(err)
		}
	}
	if err := l.Publish(ctx); err != nil {
		t.Fatal(err)
	}
	widths, err := os.ReadDir(filepath.Join(dir, publicDir, "tile", "entries", "000.p"))
	if err != nil {
		t.Fatal(err)
	}
	if len(widths) > 2 {
		t.Fatalf("%d partial entry bundles for 40 batches in one interval, want at most 2", len(widths))
	}
}
