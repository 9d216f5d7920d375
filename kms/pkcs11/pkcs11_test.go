//go:build cgo

package pkcs11_test

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
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

func TestKeyStaysInToken(t *testing.T) {
	ctx := context.Background()
	h := pkcs11test.Start(t)
	h.InitToken(t, token)
	s := open(t, h.Config(t, token))
	if err := s.CreateKey(ctx, "uk-freiburg/records"); err != nil {
		t.Fatal(err)
	}
	sensitive, extractable, valueErr, err := pkcs11.KeyAttributes(s, "uk-freiburg/records")
	if err != nil {
		t.Fatal(err)
	}
	if !sensitive || extractable || valueErr == nil {
		t.Fatalf("key: sensitive=%t extractable=%t, value readable: %t", sensitive, extractable, valueErr == nil)
	}
	// A key that could leave the token is refused, not used.
	if err := pkcs11.ImportExtractableKey(s, "uk-freiburg/careless"); err != nil {
		t.Fatal(err)
	}
	if dk, err := s.GenerateDataKey(ctx, kms.MustBind("uk-freiburg/careless", caseA)); dk != nil || !errors.Is(err, kms.ErrDenied) {
		t.Fatalf("extractable key: %v, want ErrDenied", err)
	}
}

func TestRotationMinDecryptionVersion(t *testing.T) {
	ctx := context.Background()
	h := pkcs11test.Start(t)
	h.InitToken(t, token)
	s := open(t, h.Config(t, token))
	const k = "uk-freiburg/records"
	if err := s.CreateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateKey(ctx, k); !errors.Is(err, kms.ErrExists) {
		t.Fatalf("second CreateKey: %v", err)
	}
	old, err := s.GenerateDataKey(ctx, kms.MustBind(k, caseA))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RotateKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	fresh, err := s.GenerateDataKey(ctx, kms.MustBind(k, caseA))
	if err != nil {
		t.Fatal(err)
	}
	if v := binary.BigEndian.Uint32(fresh.Wrapped[4:8]); v != 2 {
		t.Fatalf("new data key under version %d, want 2", v)
	}
	if err := s.SetMinDecryptionVersion(ctx, k, 3); err == nil {
		t.Error("min decryption version above the latest accepted")
	}
	if err := s.SetMinDecryptionVersion(ctx, k, 2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.UnwrapDataKey(ctx, kms.MustBind(k, caseA), old.Wrapped); got != nil || !errors.Is(err, kms.ErrBadWrapped) {
		t.Errorf("v1 after min decryption version 2: %v", err)
	}
	got, err := s.UnwrapDataKey(ctx, kms.MustBind(k, caseA), fresh.Wrapped)
	if err != nil || !got.Equal(fresh.Plaintext) {
		t.Fatalf("v2: %v", err)
	}
	// The setting lives in the token: a second store (another replica) sees it.
	cfg2 := h.Config(t, token)
	cfg2.LabelPrefix = pkcs11.Prefix(s)
	s2 := open(t, cfg2)
	if _, err := s2.UnwrapDataKey(ctx, kms.MustBind(k, caseA), old.Wrapped); !errors.Is(err, kms.ErrBadWrapped) {
		t.Errorf("second store, v1: %v", err)
	}
	if err := s.SetMinDecryptionVersion(ctx, k, 1); err != nil {
		t.Fatal(err)
	}
	if got, err := s2.UnwrapDataKey(ctx, kms.MustBind(k, caseA), old.Wrapped); err != nil || !got.Equal(old.Plaintext) {
		t.Errorf("v1 after lowering again: %v", err)
	}
}

func TestPIN(t *testing.T) {
	h := pkcs11test.Start(t)
	h.InitToken(t, token)
	cfg := h.Config(t, token)
	cfg.PINFile, cfg.PINEnv = "", "HSM_PIN"
	env := func(v string, ok bool) pkcs11.Options {
		return pkcs11.Options{LookupEnv: func(k string) (string, bool) {
			if k != "HSM_PIN" {
				t.Errorf("looked up %s", k)
			}
			return v, ok
		}}
	}
	s, err := pkcs11.New(context.Background(), cfg, env(pkcs11test.PIN, true))
	if err != nil {
		t.Fatalf("PIN from the environment: %v", err)
	}
	s.Close()
	for _, tc := range []struct {
		v  string
		ok bool
	}{{"", false}, {"", true}, {"wrong", true}} {
		if _, err := pkcs11.New(context.Background(), cfg, env(tc.v, tc.ok)); !errors.Is(err, kms.ErrDenied) {
			t.Errorf("PIN %q set=%t: %v, want ErrDenied", tc.v, tc.ok, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := pkcs11.Config{Module: "/m.so", Token: "t", PINFile: "/pin"}
	for _, tc := range []struct {
		name string
		edit func(*pkcs11.Config)
		want string
	}{
		{"valid", func(*pkcs11.Config) {}, ""},
		{"no module", func(c *pkcs11.Config) { c.Module = "" }, "module:"},
		{"no token", func(c *pkcs11.Config) { c.Token = "" }, "token:"},
		{"long token", func(c *pkcs11.Config) { c.Token = strings.Repeat("x", 33) }, "token:"},
		{"no PIN source", func(c *pkcs11.Config) { c.PINFile = "" }, "pin_file or pin_env"},
		{"two PIN sources", func(c *pkcs11.Config) { c.PINEnv = "PIN" }, "set only one"},
		{"bad env name", func(c *pkcs11.Config) { c.PINFile, c.PINEnv = "", "pin=1234" }, "pin_env:"},
		{"bad prefix", func(c *pkcs11.Config) { c.LabelPrefix = "../x" }, "label_prefix:"},
		{"sessions", func(c *pkcs11.Config) { c.Sessions = 1000 }, "sessions:"},
	} {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func FuzzUnwrap(f *testing.F) {
	f.Add([]byte("mtp1\x00\x00\x00\x01"), "k")
	f.Add(make([]byte, 68), "k")
	f.Fuzz(func(t *testing.T, wrapped []byte, name string) {
		h := pkcs11test.Start(t)
		h.InitToken(t, token)
		s := fuzzStore(t, h)
		got, err := s.UnwrapDataKey(context.Background(), kms.MustBind("k", caseA), wrapped)
		if got != nil || err == nil {
			t.Fatal("junk unwrapped")
		}
		// A name or context that does not bind is refused before any store sees it; one that
		// binds must still never unwrap junk.
		b, err := kms.Bind(name, kms.Context{"x": name})
		if err != nil {
			return
		}
		if _, err := s.UnwrapDataKey(context.Background(), b, wrapped); err == nil {
			t.Fatal("junk unwrapped")
		}
	})
}

var fuzzOnce struct {
	sync.Once
	s *pkcs11.Store
}

func fuzzStore(t *testing.T, h *pkcs11test.HSM) *pkcs11.Store {
	fuzzOnce.Do(func() {
		s, err := pkcs11.New(context.Background(), h.Config(t, token), pkcs11.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CreateKey(context.Background(), "k"); err != nil {
			t.Fatal(err)
		}
		fuzzOnce.s = s
	})
	if fuzzOnce.s == nil {
		t.Skip("no store")
	}
	return fuzzOnce.s
}
