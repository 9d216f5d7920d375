package vault

import (
	"errors"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/kms"
)

// FuzzRouter: whatever the name, a mapped path lies under the tenant's own mount and holds
// nothing that URL decoding or path cleaning could turn into another path.
func FuzzRouter(f *testing.F) {
	for _, s := range []string{
		"uk-freiburg/records", "uk-freiburg/db/password", "signing-root", "../sys", "uk-freiburg/..%2fsys",
		"uk-freiburg/./x", "uk-koeln/x", "sys/seal", "uk-freiburg//x", "uk-freiburg/x.y", "uk-freiburg/x-",
	} {
		f.Add(s)
	}
	c := validConfig()
	c.Global = &Mapping{}
	r := newRouter(&c)
	f.Fuzz(func(t *testing.T, name string) {
		tp, terr := r.transitPath(name, "decrypt")
		kp, kerr := r.kvPath(name, "data")
		for _, res := range []struct {
			path string
			err  error
		}{{tp, terr}, {kp, kerr}} {
			if res.err != nil {
				if !errors.Is(res.err, kms.ErrInvalidName) && !errors.Is(res.err, kms.ErrNotFound) {
					t.Fatalf("%q: unexpected error kind %v", name, res.err)
				}
				continue
			}
			if kms.CheckName(name) != nil {
				t.Fatalf("%q mapped although CheckName refuses it", name)
			}
			ok := false
			for _, prefix := range []string{"transit-uk-freiburg/decrypt/", "transit-uk-koeln/decrypt/", "transit-global/decrypt/",
				"kv-uk-freiburg/data/trustd/", "kv-uk-koeln/data/trustd/", "kv-global/data/trustd/"} {
				if strings.HasPrefix(res.path, prefix) {
					ok = true
				}
			}
			if !ok {
				t.Fatalf("%q -> %q: outside the configured mounts", name, res.path)
			}
			for _, seg := range strings.Split(res.path, "/") {
				if seg == "" || seg == "." || seg == ".." || strings.ContainsAny(seg, "%?#\\") {
					t.Fatalf("%q -> %q: segment %q", name, res.path, seg)
				}
			}
		}
		// A tenant's name never reaches another tenant's mount.
		if terr == nil && strings.HasPrefix(name, "uk-freiburg/") && !strings.HasPrefix(tp, "transit-uk-freiburg/") {
			t.Fatalf("%q -> %q", name, tp)
		}
	})
}

// FuzzParseWrapped: wrapped keys come from workloads; the shape check never panics and passes
// only transit's own format.
func FuzzParseWrapped(f *testing.F) {
	for _, s := range []string{
		"vault:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "vault:v0:AAAA", "vault:v1:", "vault:v1:!!",
		"vault:v99999999999:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "", "vault", strings.Repeat("v", 600),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, w []byte) {
		err := parseWrapped(w)
		if err == nil && (!strings.HasPrefix(string(w), "vault:v") || len(w) > maxWrapped) {
			t.Fatalf("accepted %q", w)
		}
		if err != nil && !errors.Is(err, kms.ErrBadWrapped) {
			t.Fatalf("error kind %v", err)
		}
	})
}
