package pkcs11_test

import (
	"context"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/kmstest"
	"github.com/medicus-cloud/trust/kms/pkcs11"
	"github.com/medicus-cloud/trust/kms/pkcs11/pkcs11test"
)

func TestMain(m *testing.M) { pkcs11test.Main(m) }

var caseA = kms.Context{"tenant": "uk-freiburg", "case": "a"}

const token = "medicus-main"

func open(t testing.TB, cfg pkcs11.Config) *pkcs11.Store {
	t.Helper()
	s, err := pkcs11.New(context.Background(), cfg, pkcs11.Options{})
	if err != nil {
		t.Fatalf("pkcs11.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	h := pkcs11test.Start(t)
	h.InitToken(t, token)
	kmstest.Run(t, func(t *testing.T) kmstest.Store { return open(t, h.Config(t, token)) })
}
