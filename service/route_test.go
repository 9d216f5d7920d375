package service_test

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/kms/route"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/secret"
)

// TestTenantStore: tenant "hello" keeps its keys in a store of its own. A release of its key
// under a context naming another tenant is refused before any store is asked (that tenant's
// consent keys and records of processing would count it); its own tenant, or a context naming
// none, is served.
func TestTenantStore(t *testing.T) {
	ctx := context.Background()
	own, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{3}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	if err := own.CreateKey(ctx, "hello/records"); err != nil {
		t.Fatal(err)
	}
	r, err := route.New(route.Options{Stores: map[string]route.Store{"hello-hsm": own}, Routes: map[string]string{"hello": "hello-hsm"}})
	if err != nil {
		t.Fatal(err)
	}
	h := startWith(t, r)
	c, err := sdk.New(ctx, sdk.Options{Conn: h.conn, Provider: hello()})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		kc   kms.Context
		want codes.Code
	}{
		{kms.Context{"tenant": "uk-freiburg", "case": "42"}, codes.InvalidArgument},
		{kms.Context{"tenant": "hello", "case": "42"}, codes.OK},
		{kms.Context{"case": "42"}, codes.OK},
	} {
		_, _, err := c.GenerateDataKey(ctx, "hello/records", tc.kc)
		if status.Code(err) != tc.want {
			t.Errorf("context %v: %v, want %v", tc.kc, err, tc.want)
		}
		if err != nil && (!strings.Contains(err.Error(), "context.tenant") || strings.Contains(err.Error(), "uk-freiburg")) {
			t.Errorf("error %q should name context.tenant and not echo the context's value", err)
		}
	}
}
