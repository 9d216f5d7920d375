package release_test

import (
	"go/build"
	"testing"

	"github.com/medicus-cloud/trust/release"
)

func TestCanonicalStrings(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{string(release.Secret), "secret"},
		{string(release.DataKey), "data_key"},
		{string(release.Unwrap), "unwrap"},
		{string(release.Allow), "allow"},
		{string(release.Deny), "deny"},
		{string(release.Error), "error"},
		{string(release.Unwrap.Grant()), "data_key"},
		{string(release.DataKey.Grant()), "data_key"},
		{string(release.Secret.Grant()), "secret"},
	} {
		if tc.got != tc.want {
			t.Errorf("%q, want %q", tc.got, tc.want)
		}
	}
	for _, k := range release.Kinds() {
		if !k.Valid() {
			t.Errorf("%q not valid", k)
		}
	}
	for _, o := range release.Outcomes() {
		if !o.Valid() {
			t.Errorf("%q not valid", o)
		}
	}
	if release.Kind("ok").Valid() || release.Outcome("ok").Valid() || release.Outcome("denied").Valid() {
		t.Error("foreign strings accepted")
	}
}

// TestLeaf keeps the package a leaf: every package of trustd may import it.
func TestLeaf(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Imports) != 0 {
		t.Fatalf("release imports %v; it must import nothing", p.Imports)
	}
}
