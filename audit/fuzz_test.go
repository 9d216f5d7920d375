package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func FuzzParseRecord(f *testing.F) {
	for i := range 3 {
		b, _ := Marshal(testRecord(i))
		f.Add(b)
	}
	f.Add([]byte(`{"time":"2026-11-24T09:30:00Z","event":"attest","verdict":"allow","x":1}`))
	f.Add([]byte(`{"time":"2026-11-24T09:30:00+01:00","request_id":"","event":"attest","verdict":"allow"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		// Accepted bytes are canonical: they are exactly what Marshal writes.
		c, err := Marshal(r)
		if err != nil || !bytes.Equal(c, b) {
			t.Fatalf("accepted %q, re-encodes to %q (%v)", b, c, err)
		}
	})
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"tile/0/000", "tile/entries/x001/x234/067.p/8", "tile/3/x000/001", "tile/0/000.p/256", "tile/entries/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, i, w, err := parseTilePath(s)
		if err == nil && tilePath(l, i, w) != s {
			t.Fatalf("%q parsed as %d/%d/%d", s, l, i, w)
		}
	})
}

func FuzzParseBundle(f *testing.F) {
	f.Add(appendBundle(nil, [][]byte{[]byte("a"), []byte("bc")}), 2)
	f.Add([]byte{0, 5, 1}, 1)
	f.Fuzz(func(t *testing.T, b []byte, w int) {
		if w < 0 || w > tileWidth {
			return
		}
		es, err := parseBundle(b, w)
		if err == nil && !bytes.Equal(appendBundle(nil, es), b) {
			t.Fatal("bundle does not round-trip")
		}
	})
}

func FuzzOpenCheckpoint(f *testing.F) {
	dir := f.TempDir()
	l := openSeeded(f, dir, 1)
	appendInOrder(f, l, records(0, 3))
	l.Close()
	f.Add(checkpointOf(f, dir))
	f.Add([]byte("medicus.cloud/trust/audit\n3\nAAAA\n\n— medicus.cloud/trust/audit AAAA\n"))
	vkey := l.VerifierKey()
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := OpenCheckpoint(b, vkey)
		if err == nil && (len(cp.Root) != hashSize || cp.Origin != l.Origin()) {
			t.Fatalf("accepted %q", b)
		}
	})
}

func FuzzParseInclusionProof(f *testing.F) {
	for _, name := range []string{"prove-000.golden", "prove-299.golden"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ip, err := ParseInclusionProof(b)
		if err == nil && len(ip.Root) != hashSize {
			t.Fatal("accepted a bad root")
		}
	})
}

// FuzzParseJournal: a journal read back after a crash never panics, and what it yields is a
// run of contiguous batches from its base.
func FuzzParseJournal(f *testing.F) {
	h := journalHeaderBytes(7, emptyRoot())
	f.Add(h)
	f.Add(appendFrame(bytes.Clone(h), 7, [][]byte{[]byte("a"), []byte("bc")}))
	f.Add(appendFrame(appendFrame(bytes.Clone(h), 7, [][]byte{[]byte("a")}), 8, nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		base, _, batches, err := parseJournal(b)
		if err != nil {
			return
		}
		next := base
		for _, jb := range batches {
			if jb.first != next {
				t.Fatalf("batch at %d, want %d", jb.first, next)
			}
			next += uint64(len(jb.entries))
		}
	})
}
