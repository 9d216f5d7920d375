package policies

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type testKey struct {
	signer  crypto.Signer
	private []byte // PEM
	public  []byte // PEM
}

func newTestKeys(t testing.TB) []testKey {
	t.Helper()
	var out []testKey
	e1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	e2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	for _, k := range []crypto.Signer{e1, e2, ed} {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := x509.MarshalPKIXPublicKey(k.Public())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, testKey{k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})})
	}
	return out
}

func trustPEM(keys ...testKey) []byte {
	var b []byte
	for _, k := range keys {
		b = append(b, k.public...)
	}
	return b
}

// bundleDir writes an unsigned bundle whose hello policy grants secret.
func bundleDir(t testing.TB, dir, secret string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("examples/hello.yaml")
	if err != nil {
		t.Fatal(err)
	}
	src = bytes.Replace(src, []byte("hello/api-token"), []byte(secret), 1)
	if err := os.WriteFile(filepath.Join(dir, "hello.yaml"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sign(t testing.TB, dir string, k testKey, version uint64) {
	t.Helper()
	if err := signBundle(dir, k.private, version, rand.Reader); err != nil {
		t.Fatal(err)
	}
}

func TestSignVerify(t *testing.T) {
	keys := newTestKeys(t)
	trusted := trustPEM(keys...)
	dir := bundleDir(t, t.TempDir(), "hello/api-token")
	if _, err := verifyBundle(dir, trusted, 2); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned: %v", err)
	}
	if err := signBundle(dir, keys[0].private, 0, rand.Reader); err == nil || !strings.Contains(err.Error(), "give the bundle version") {
		t.Fatalf("first signature without version: %v", err)
	}
	sign(t, dir, keys[0], 3)
	if _, err := verifyBundle(dir, trusted, 2); !errors.Is(err, ErrTooFewSignatures) {
		t.Fatalf("one of two: %v", err)
	}
	sign(t, dir, keys[0], 0) // the same person again does not count twice
	if _, err := verifyBundle(dir, trusted, 2); !errors.Is(err, ErrTooFewSignatures) {
		t.Fatalf("same key twice: %v", err)
	}
	if err := signBundle(dir, keys[2].private, 4, rand.Reader); err == nil || !strings.Contains(err.Error(), "is version 3") {
		t.Fatalf("second signer with another version: %v", err)
	}
	sign(t, dir, keys[2], 3) // Ed25519
	b, err := verifyBundle(dir, trusted, 2)
	if err != nil {
		t.Fatal(err)
	}
	man, _ := os.ReadFile(filepath.Join(dir, manifestName))
	sum := sha256.Sum256(man)
	if b.Version != 3 || len(b.Signers) != 2 || !bytes.Equal(b.Digest, sum[:]) {
		t.Fatalf("bundle %d %v %x", b.Version, b.Signers, b.Digest)
	}
	// Threshold 0 means every configured key.
	if _, err := LoadSigned(dir, VerifyOptions{Keys: mustKeys(t, trusted)}); !errors.Is(err, ErrTooFewSignatures) {
		t.Fatalf("threshold 0: %v", err)
	}
	// A signature by a key nobody trusts is ignored.
	if _, err := verifyBundle(dir, trustPEM(keys[0], keys[1]), 2); !errors.Is(err, ErrTooFewSignatures) {
		t.Fatalf("untrusted signer counted: %v", err)
	}
	if _, err := verifyBundle(dir, trusted, 4); err == nil || !strings.Contains(err.Error(), "impossible") {
		t.Fatalf("threshold 4 of 3: %v", err)
	}
}

func mustKeys(t testing.TB, p []byte) TrustKeys {
	k, err := ParseTrustKeys(p)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyTampering(t *testing.T) {
	keys := newTestKeys(t)
	trusted := trustPEM(keys...)
	tests := []struct {
		name   string
		tamper func(dir string)
		want   error
		msg    string
	}{
		{"policy changed", func(dir string) { appendFile(t, filepath.Join(dir, "hello.yaml"), "# more\n") }, ErrManifest, "hello.yaml was changed"},
		{"policy added", func(dir string) {
			bundleDir(t, filepath.Join(dir, "x"), "x/y")
			rename(t, filepath.Join(dir, "x", "hello.yaml"), filepath.Join(dir, "extra.yaml"))
		}, ErrManifest, "extra.yaml is not in the manifest"},
		{"policy removed", func(dir string) { os.Remove(filepath.Join(dir, "hello.yaml")) }, nil, "no *.yaml"},
		{"version raised", func(dir string) { replaceIn(t, filepath.Join(dir, manifestName), `"version": 5`, `"version": 6`) }, ErrBadSignature, "does not verify"},
		{"manifest reformatted", func(dir string) { replaceIn(t, filepath.Join(dir, manifestName), `"version": 5`, `"version":5`) }, ErrManifest, "canonical"},
		{"manifest unknown field", func(dir string) {
			replaceIn(t, filepath.Join(dir, manifestName), `"version": 5`, `"version": 5, "x": 1`)
		}, ErrManifest, "unknown field"},
		{"signature corrupted", func(dir string) { corruptLastByte(t, dir) }, ErrBadSignature, "does not verify"},
		{"signature garbage", func(dir string) { writeSig(t, dir, "zz.cose", []byte("garbage")) }, ErrBadSignature, "zz.cose: not a COSE_Sign1"},
		{"signatures removed", func(dir string) { os.RemoveAll(filepath.Join(dir, sigDir)) }, ErrUnsigned, "no signatures"},
		{"manifest removed", func(dir string) { os.Remove(filepath.Join(dir, manifestName)) }, ErrUnsigned, "no bundle.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := bundleDir(t, t.TempDir(), "hello/api-token")
			sign(t, dir, keys[0], 5)
			sign(t, dir, keys[1], 0)
			tc.tamper(dir)
			_, err := verifyBundle(dir, trusted, 2)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestSignRefusals(t *testing.T) {
	keys := newTestKeys(t)
	dir := bundleDir(t, t.TempDir(), "hello/api-token")
	appendFile(t, filepath.Join(dir, "hello.yaml"), "colour: red\n")
	if err := signBundle(dir, keys[0].private, 1, rand.Reader); err == nil || !strings.Contains(err.Error(), "not signing") {
		t.Fatalf("invalid bundle signed: %v", err)
	}
	dir = bundleDir(t, t.TempDir(), "hello/api-token")
	sign(t, dir, keys[0], 1)
	appendFile(t, filepath.Join(dir, "hello.yaml"), "# edited after the first signature\n")
	if err := signBundle(dir, keys[1].private, 0, rand.Reader); !errors.Is(err, ErrManifest) {
		t.Fatalf("changed files signed: %v", err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(p384)
	if err := signBundle(dir, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0, rand.Reader); err == nil || !strings.Contains(err.Error(), "want P-256") {
		t.Fatalf("P-384 key: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte("-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n")} {
		if _, err := ParseTrustKeys(bad); err == nil {
			t.Fatalf("trust keys %q accepted", bad)
		}
		if _, err := ParseSigningKey(bad); err == nil {
			t.Fatalf("signing key %q accepted", bad)
		}
	}
}

func TestStore(t *testing.T) {
	keys := newTestKeys(t)
	tk := mustKeys(t, trustPEM(keys...))
	root := t.TempDir()
	state := filepath.Join(root, "state.json")
	live := filepath.Join(root, "live")
	opts := StoreOptions{Dir: live, Keys: tk, Threshold: 2, StateFile: state}

	for _, o := range []StoreOptions{{}, {Dir: live}, {Dir: live, Keys: tk, Threshold: 2}, {Dir: live, Keys: tk, Threshold: 5, StateFile: state}} {
		if _, err := NewStore(o); err == nil {
			t.Fatalf("NewStore(%+v) accepted", o)
		}
	}

	// version 1, then version 2, each signed by two people.
	v1 := bundleDir(t, filepath.Join(root, "v1"), "hello/v1")
	sign(t, v1, keys[0], 1)
	sign(t, v1, keys[1], 0)
	v2 := bundleDir(t, filepath.Join(root, "v2"), "hello/v2")
	sign(t, v2, keys[1], 2)
	sign(t, v2, keys[2], 0)
	v2other := bundleDir(t, filepath.Join(root, "v2other"), "hello/other")
	sign(t, v2other, keys[0], 2)
	sign(t, v2other, keys[2], 0)
	unsigned := bundleDir(t, filepath.Join(root, "unsigned"), "hello/dev")

	install := func(src string) {
		t.Helper()
		os.RemoveAll(live)
		if err := os.CopyFS(live, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
	}
	grant := func(s *Store) string { return s.Current().Policies[0].Spec.Grants.Secrets[0].Name }

	install(unsigned)
	if _, err := OpenStore(t.Context(), opts); !errors.Is(err, ErrUnsigned) {
		t.Fatalf("unsigned bundle in production: %v", err)
	}
	install(v1)
	s, err := OpenStore(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if grant(s) != "hello/v1" || s.Current().Version != 1 {
		t.Fatalf("v1: %+v", s.Current())
	}
	install(v2)
	if err := s.Reload(t.Context()); err != nil || grant(s) != "hello/v2" {
		t.Fatalf("v2: %v", err)
	}
	st, _ := os.ReadFile(state)
	if !strings.Contains(string(st), `"version":2`) {
		t.Fatalf("state file %s", st)
	}
	// Failures keep v2 active and say why.
	failures := []struct {
		name  string
		setup func()
		want  error
	}{
		{"rollback", func() { install(v1) }, ErrRollback},
		{"same version, other content", func() { install(v2other) }, ErrRollback},
		{"unsigned", func() { install(unsigned) }, ErrUnsigned},
		{"tampered", func() { install(v2); appendFile(t, filepath.Join(live, "hello.yaml"), "# x\n") }, ErrManifest},
		{"bad signature", func() { install(v2); corruptLastByte(t, live) }, ErrBadSignature},
		{"missing directory", func() { os.RemoveAll(live) }, os.ErrNotExist},
	}
	for _, f := range failures {
		f.setup()
		if err := s.Reload(t.Context()); !errors.Is(err, f.want) {
			t.Errorf("%s: got %v, want %v", f.name, err, f.want)
		}
		if grant(s) != "hello/v2" {
			t.Fatalf("%s: active bundle replaced", f.name)
		}
	}
	// A restart cannot roll back either: the state file remembers version 2.
	install(v1)
	if _, err := OpenStore(t.Context(), opts); !errors.Is(err, ErrRollback) {
		t.Fatalf("restart with v1: %v", err)
	}
	install(v2)
	if s2, err := OpenStore(t.Context(), opts); err != nil || grant(s2) != "hello/v2" {
		t.Fatalf("restart with v2: %v", err)
	}
	if err := os.WriteFile(state, []byte("{garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(t.Context(), opts); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("damaged state: %v", err)
	}

	// Development: unsigned directories load as version 0 without a state file.
	install(unsigned)
	dev, err := OpenStore(t.Context(), StoreOptions{Dir: live, AllowUnsigned: true})
	if err != nil || dev.Current().Version != 0 || grant(dev) != "hello/dev" {
		t.Fatalf("dev: %v", err)
	}
}

func TestStoreWatch(t *testing.T) {
	keys := newTestKeys(t)
	root := t.TempDir()
	live := bundleDir(t, filepath.Join(root, "live"), "hello/a")
	events := make(chan error, 10)
	s, err := OpenStore(t.Context(), StoreOptions{Dir: live, Keys: mustKeys(t, trustPEM(keys[0])), Threshold: 1,
		StateFile: filepath.Join(root, "state"), AllowUnsigned: true,
		OnReload: func(b *Bundle, err error) { events <- err }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error)
	go func() { done <- s.Watch(ctx, 5*time.Millisecond) }()

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() { // readers never see nil or a torn bundle
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
				if b := s.Current(); b == nil || len(b.Policies) != 1 {
					t.Error("bad bundle while reloading")
					return
				}
			}
		}
	}()
	bundleDir(t, live, "hello/b")
	sign(t, live, keys[0], 7)
	// The watcher may catch the directory between the manifest and the signature: that attempt
	// fails (unsigned) and the next one, after the signature lands, succeeds.
	for {
		err := waitEvent(t, events)
		if err == nil && s.Current().Version == 7 {
			break
		}
		if err != nil && !errors.Is(err, ErrUnsigned) {
			t.Fatal(err)
		}
	}
	appendFile(t, filepath.Join(live, "hello.yaml"), "# unsigned edit\n")
	if err := waitEvent(t, events); !errors.Is(err, ErrManifest) {
		t.Fatalf("edit after signing: %v", err)
	}
	close(stop)
	wg.Wait()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("watch returned %v", err)
	}
	if s.Current().Version != 7 {
		t.Fatal("failed reload replaced the bundle")
	}
}

func waitEvent(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no reload event")
	}
	return nil
}

func appendFile(t testing.TB, name, s string) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func replaceIn(t testing.TB, name, old, new string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil || !bytes.Contains(b, []byte(old)) {
		t.Fatalf("%s: %v or no %q", name, err, old)
	}
	if err := os.WriteFile(name, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644); err != nil {
		t.Fatal(err)
	}
}

func rename(t testing.TB, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}

func writeSig(t testing.TB, dir, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, sigDir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func corruptLastByte(t testing.TB, dir string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, sigDir, "*.cose"))
	if len(m) == 0 {
		t.Fatal("no signatures")
	}
	b, _ := os.ReadFile(m[0])
	b[len(b)-1] ^= 1
	if err := os.WriteFile(m[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLoadTakesSignedVersion: explain and diff on a signed directory report the digest trustd
// reports; once a file changes, the stale manifest is ignored.
func TestLoadTakesSignedVersion(t *testing.T) {
	keys := newTestKeys(t)
	dir := bundleDir(t, t.TempDir(), "hello/api-token")
	sign(t, dir, keys[0], 9)
	signed, err := LoadSigned(dir, VerifyOptions{Keys: mustKeys(t, trustPEM(keys[0]))})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(dir)
	if err != nil || b.Version != 9 || !bytes.Equal(b.Digest, signed.Digest) {
		t.Fatalf("%v %+v", err, b)
	}
	appendFile(t, filepath.Join(dir, "hello.yaml"), "---\n")
	if b, err = Load(dir); err != nil || b.Version != 0 {
		t.Fatalf("stale manifest: %v %+v", err, b)
	}
}

// signBundle is what `trustctl policy sign` does: sign dir with a PEM private key.
func signBundle(dir string, keyPEM []byte, version uint64, r io.Reader) error {
	key, err := ParseSigningKey(keyPEM)
	if err != nil {
		return err
	}
	_, _, err = SignDir(dir, key, version, r)
	return err
}

// verifyBundle is what `trustctl policy verify` does: load dir as trustd would.
func verifyBundle(dir string, trustKeysPEM []byte, threshold int) (*Bundle, error) {
	keys, err := ParseTrustKeys(trustKeysPEM)
	if err != nil {
		return nil, err
	}
	return LoadSigned(dir, VerifyOptions{Keys: keys, Threshold: threshold})
}
