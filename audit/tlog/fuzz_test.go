package tlog

import (
	"bytes"
	"math/rand/v2"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"tile/0/000", "tile/entries/x001/x234/067.p/8", "tile/3/x000/001", "tile/0/000.p/256", "tile/entries/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, i, w, err := ParseTilePath(s)
		if err == nil && TilePath(l, i, w) != s {
			t.Fatalf("%q parsed as %d/%d/%d", s, l, i, w)
		}
	})
}

func FuzzParseBundle(f *testing.F) {
	f.Add(AppendBundle(nil, [][]byte{[]byte("a"), []byte("bc")}), 2)
	f.Add([]byte{0, 5, 1}, 1)
	f.Fuzz(func(t *testing.T, b []byte, w int) {
		if w < 0 || w > TileWidth {
			return
		}
		es, err := ParseBundle(b, w)
		if err == nil && !bytes.Equal(AppendBundle(nil, es), b) {
			t.Fatal("bundle does not round-trip")
		}
	})
}

// testSigner is a note key from a fixed seed.
func testSigner(t testing.TB, seed byte) (note.Signer, string) {
	t.Helper()
	var s [32]byte
	s[0] = seed
	skey, _, err := note.GenerateKey(rand.NewChaCha8(s), DefaultOrigin)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, vkey
}

func FuzzOpenCheckpoint(f *testing.F) {
	signer, vkey := testSigner(f, 1)
	_, _, root, err := EmptyEdge().Append([][]byte{[]byte("a"), []byte("b"), []byte("c")})
	if err != nil {
		f.Fatal(err)
	}
	cp, err := SignCheckpoint(Checkpoint{Origin: DefaultOrigin, Size: 3, Root: root}, signer)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cp)
	f.Add([]byte("medicus.cloud/trust/audit\n3\nAAAA\n\n— medicus.cloud/trust/audit AAAA\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := OpenCheckpoint(b, vkey)
		if err == nil && (len(cp.Root) != HashSize || cp.Origin != DefaultOrigin) {
			t.Fatalf("accepted %q", b)
		}
	})
}
