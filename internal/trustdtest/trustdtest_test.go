package trustdtest_test

import (
	"context"
	"testing"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/internal/trustdtest"
	"github.com/medicus-cloud/trust/sdk"
)

// A workload with the approved measurement gets its secret; the release is in the audit log.
func TestStart(t *testing.T) {
	m := make([]byte, 48)
	copy(m, "trustdtest image")
	s := trustdtest.StartTB(t, trustdtest.Options{
		Image:    &trustdtest.Image{Name: "img", Measurement: m, Secrets: []string{"t/s"}, DataKeys: []string{"t/k"}},
		DataKeys: []string{"t/k"},
		Secrets:  map[string]string{"t/s": "v"},
	})
	ctx := context.Background()
	c, err := sdk.New(ctx, sdk.Options{Addr: s.Addr, Insecure: true,
		Provider: simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1})})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Secret(ctx, "t/s")
	if err != nil {
		t.Fatal(err)
	}
	if string(v.Reveal()) != "v" {
		t.Fatalf("secret %q", v.Reveal())
	}
	ct, err := c.Encrypt(ctx, "t/k", nil, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if pt, err := c.Decrypt(ctx, nil, ct); err != nil || string(pt) != "x" {
		t.Fatalf("decrypt %q %v", pt, err)
	}
	if s.Log == nil {
		t.Fatal("no audit log")
	}
}
