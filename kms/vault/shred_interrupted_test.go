package vault_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/vault"
	"github.com/medicus-cloud/trust/kms/vault/vaulttest"
)

// failConfig answers 400 to the transit key configuration (the shred's "allow deletion" step)
// while on is set, and passes everything else to Vault.
type failConfig struct {
	rt http.RoundTripper
	on atomic.Bool
}

func (f *failConfig) RoundTrip(r *http.Request) (*http.Response, error) {
	if f.on.Load() && r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/config") {
		return &http.Response{StatusCode: http.StatusBadRequest, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(strings.NewReader(`{"errors":["injected"]}`)), Request: r}, nil
	}
	return f.rt.RoundTrip(r)
}

// TestShredInterrupted: a shred that stopped after its tombstone (a crash, or Vault refusing a
// later step) leaves the transit key in Vault, but releases under the name already fail with
// kms.ErrShredded, on the store that tried and on a fresh one (another replica), as shred.go
// promises; a retried shred finishes the job.
func TestShredInterrupted(t *testing.T) {
	ctx := context.Background()
	srv := vaulttest.Shared(t)
	cfg := config(t, srv, srv.AdminRoleID, srv.AdminSecretIDFile)
	ft := &failConfig{rt: newCounter(srv).rt}
	s := open(t, cfg, vault.Options{Transport: ft})
	const patient = "tenant-a/pk-5e1d0b"
	if err := s.CreateKey(ctx, patient); err != nil {
		t.Fatal(err)
	}
	dk, err := s.GenerateDataKey(ctx, kms.MustBind(patient, caseA))
	if err != nil {
		t.Fatal(err)
	}
	ft.on.Store(true)
	if err := s.ShredKey(ctx, patient); err == nil {
		t.Fatal("shred succeeded although Vault refused to allow deletion")
	}
	ft.on.Store(false)
	replica := open(t, cfg, vault.Options{})
	for name, st := range map[string]*vault.Store{"same store": s, "replica": replica} {
		if _, err := st.UnwrapDataKey(ctx, kms.MustBind(patient, caseA), dk.Wrapped); !errors.Is(err, kms.ErrShredded) {
			t.Errorf("%s: unwrap after an interrupted shred: %v, want ErrShredded", name, err)
		}
		if _, err := st.GenerateDataKey(ctx, kms.MustBind(patient, caseA)); !errors.Is(err, kms.ErrShredded) {
			t.Errorf("%s: generate after an interrupted shred: %v, want ErrShredded", name, err)
		}
	}
	if err := s.ShredKey(ctx, patient); err != nil {
		t.Fatalf("retried shred: %v", err)
	}
	if _, err := replica.UnwrapDataKey(ctx, kms.MustBind(patient, caseA), dk.Wrapped); !errors.Is(err, kms.ErrShredded) {
		t.Errorf("unwrap after the retried shred: %v", err)
	}
}
