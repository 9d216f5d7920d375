package auditor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/audit/auditor"
	"github.com/medicus-cloud/trust/audit/audittest"
	"github.com/medicus-cloud/trust/audit/storage/posix"
	"github.com/medicus-cloud/trust/audit/tlog"
)

// publicDir is where a posix log keeps its public tree.
const publicDir = "log"

// openSeeded opens a posix log whose note key comes from a fixed seed, so that logs (and the
// golden files built from them) are stable.
func openSeeded(t testing.TB, dir string, seed uint64) *posix.Log {
	t.Helper()
	var s [32]byte
	s[0] = byte(seed)
	l, err := posix.Open(context.Background(), posix.Options{Dir: dir, Rand: rand.NewChaCha8(s)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendInOrder appends records one after the other, so that the log's content is
// deterministic.
func appendInOrder(t testing.TB, l *posix.Log, recs []*audit.Record) {
	t.Helper()
	for _, r := range recs {
		if _, err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
}

// built caches the logs of buildLog by size: each is built once (one fsync per record), then
// copied.
var built = map[int]string{}

// buildLog returns a copy of a closed log of n records of key seed 1, and its verifier key.
func buildLog(t testing.TB, n int) (string, string) {
	t.Helper()
	tmpl, ok := built[n]
	if !ok {
		var err error
		if tmpl, err = os.MkdirTemp("", "auditor-test"); err != nil {
			t.Fatal(err)
		}
		l := openSeeded(t, tmpl, 1)
		appendInOrder(t, l, audittest.Records(0, n))
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		built[n] = tmpl
	}
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(tmpl)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "note.pub"))
	if err != nil {
		t.Fatal(err)
	}
	return dir, string(bytes.TrimSpace(b))
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range built {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

func checkpointOf(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, publicDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProve: proofs of the first, a middle and the last entry check against the checkpoint,
// also after a round trip through their JSON form, and not for another index.
func TestProve(t *testing.T) {
	ctx := context.Background()
	dir, vkey := buildLog(t, 300)
	src := auditor.Source{Log: dir, Key: vkey}
	for _, idx := range []uint64{0, 5, 299} {
		ip, err := auditor.Prove(ctx, auditor.ProveOptions{Source: src, Index: idx})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auditor.VerifyInclusion(ip, checkpointOf(t, dir), src.Key); err != nil {
			t.Fatalf("VerifyInclusion(%d): %v", idx, err)
		}
		b, err := json.MarshalIndent(ip, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := auditor.ParseInclusionProof(b)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := auditor.VerifyInclusion(parsed, checkpointOf(t, dir), src.Key); err != nil {
			t.Fatalf("VerifyInclusion(parsed %d): %v", idx, err)
		}
		parsed.Index++
		if _, err := auditor.VerifyInclusion(parsed, checkpointOf(t, dir), src.Key); err == nil {
			t.Fatalf("proof of %d verified for %d", idx, parsed.Index)
		}
	}
	if _, err := auditor.Prove(ctx, auditor.ProveOptions{Source: src, Index: 300}); err == nil {
		t.Fatal("Prove(300) of a log of 300 succeeded")
	}
}

// tamper edits the file at p (relative to the public tree).
func tamper(t *testing.T, dir, p string, f func([]byte) []byte) {
	t.Helper()
	fp := filepath.Join(dir, publicDir, filepath.FromSlash(p))
	b, err := os.ReadFile(fp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fp, f(b), 0o644); err != nil {
		t.Fatal(err)
	}
}

func flip(off int) func([]byte) []byte {
	return func(b []byte) []byte {
		if off < 0 {
			off += len(b)
		}
		b[off] ^= 0x01
		return b
	}
}

// editBundle rewrites an entry bundle through f.
func editBundle(w int, f func([][]byte) [][]byte) func([]byte) []byte {
	return func(b []byte) []byte {
		es, err := tlog.ParseBundle(b, w)
		if err != nil {
			panic(err)
		}
		return tlog.AppendBundle(nil, f(es))
	}
}

func TestVerifyTamper(t *testing.T) {
	const n = 300 // one full tile of entries, one partial of 44; level 1 partial of 1
	for _, tc := range []struct {
		name  string
		edit  func(t *testing.T, dir string)
		entry int64 // first bad entry, or -1
		is    error
	}{
		{"entry byte", func(t *testing.T, dir string) {
			tamper(t, dir, "tile/entries/000", editBundle(256, func(es [][]byte) [][]byte {
				es[7] = bytes.Replace(es[7], []byte("req-0007"), []byte("req-0008"), 1)
				return es
			}))
		}, 7, nil},
		{"entry not canonical", func(t *testing.T, dir string) {
			tamper(t, dir, "tile/entries/001.p/44", editBundle(44, func(es [][]byte) [][]byte {
				es[3] = append([]byte(" "), es[3]...)
				return es
			}))
		}, 259, audit.ErrInvalidRecord},
		{"length prefix", func(t *testing.T, dir string) { tamper(t, dir, "tile/entries/000", flip(0)) }, 0, nil},
		{"tile 0 hash", func(t *testing.T, dir string) { tamper(t, dir, "tile/0/000", flip(9*32+5)) }, 9, nil},
		{"tile 0 partial hash", func(t *testing.T, dir string) { tamper(t, dir, "tile/0/001.p/44", flip(-1)) }, 299, nil},
		{"tile 1 hash", func(t *testing.T, dir string) { tamper(t, dir, "tile/1/000.p/1", flip(0)) }, 0, nil},
		{"record removed", func(t *testing.T, dir string) {
			tamper(t, dir, "tile/entries/001.p/44", editBundle(44, func(es [][]byte) [][]byte {
				return append(es[:4:4], es[5:]...)
			}))
		}, 260, nil},
		{"records reordered", func(t *testing.T, dir string) {
			tamper(t, dir, "tile/entries/000", editBundle(256, func(es [][]byte) [][]byte {
				es[3], es[4] = es[4], es[3]
				return es
			}))
		}, 3, nil},
		{"record appended to bundle", func(t *testing.T, dir string) {
			tamper(t, dir, "tile/entries/001.p/44", editBundle(44, func(es [][]byte) [][]byte {
				return append(es, es[0])
			}))
		}, 300, nil},
		{"bundle missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, publicDir, "tile/entries/001.p/44"))
		}, 256, fs.ErrNotExist},
		{"checkpoint signature", func(t *testing.T, dir string) { tamper(t, dir, "checkpoint", flip(-3)) }, -1, tlog.ErrCheckpoint},
		{"checkpoint size", func(t *testing.T, dir string) {
			tamper(t, dir, "checkpoint", func(b []byte) []byte { return bytes.Replace(b, []byte("\n300\n"), []byte("\n299\n"), 1) })
		}, -1, tlog.ErrCheckpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, vkey := buildLog(t, n)
			tc.edit(t, dir)
			_, err := auditor.Verify(context.Background(), auditor.VerifyOptions{Source: auditor.Source{Log: dir, Key: vkey}})
			if err == nil {
				t.Fatal("tampered log verified")
			}
			var ee *tlog.EntryError
			switch {
			case tc.entry >= 0 && !errors.As(err, &ee):
				t.Fatalf("error %v names no entry, want entry %d", err, tc.entry)
			case tc.entry >= 0 && ee.Index != uint64(tc.entry):
				t.Fatalf("error %v names entry %d, want %d", err, ee.Index, tc.entry)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("error %v is not %v", err, tc.is)
			}
			t.Log(err)
		})
	}
}

// TestFork: the operator rewrites history under the same key. Every check that knows an older
// checkpoint refuses; a log re-hashed under an old checkpoint fails on the root.
func TestFork(t *testing.T) {
	ctx := context.Background()
	dirA, vkey := buildLog(t, 100)
	oldA := checkpointOf(t, dirA)

	dirB := t.TempDir()
	lb := openSeeded(t, dirB, 1) // same key seed: same signer
	if lb.VerifierKey() != vkey {
		t.Fatal("seeded keys differ")
	}
	forged := audittest.Records(0, 150)
	forged[42].Verdict = audit.VerdictAllow
	forged[42].Reason = "rewritten"
	appendInOrder(t, lb, forged)
	lb.Close()
	src := auditor.Source{Log: dirB, Key: vkey}

	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src}); err != nil {
		t.Fatalf("the fork alone is a valid log: %v", err)
	}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src, Trusted: oldA}); !errors.Is(err, tlog.ErrInconsistent) {
		t.Fatalf("Verify with trusted = %v, want tlog.ErrInconsistent", err)
	}
	if _, err := auditor.Consistency(ctx, auditor.ConsistencyOptions{Source: src, Old: oldA}); !errors.Is(err, tlog.ErrInconsistent) {
		t.Fatalf("Consistency = %v, want tlog.ErrInconsistent", err)
	}
	state := filepath.Join(t.TempDir(), "witness")
	if _, err := auditor.Witness(ctx, auditor.WitnessOptions{Source: auditor.Source{Log: dirA, Key: vkey}, State: state}); err != nil {
		t.Fatal(err)
	}
	if _, err := auditor.Witness(ctx, auditor.WitnessOptions{Source: src, State: state}); !errors.Is(err, tlog.ErrInconsistent) {
		t.Fatalf("Witness of the fork = %v, want tlog.ErrInconsistent", err)
	}
	if got, _ := os.ReadFile(state); !bytes.Equal(got, oldA) {
		t.Fatal("witness state changed after a refused checkpoint")
	}

	// Same size, different content, old checkpoint put back: the root gives it away.
	dirC := t.TempDir()
	lc := openSeeded(t, dirC, 1)
	appendInOrder(t, lc, forged[:100])
	lc.Close()
	if err := os.WriteFile(filepath.Join(dirC, publicDir, "checkpoint"), oldA, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dirC, Key: vkey}}); !errors.Is(err, tlog.ErrRootMismatch) {
		t.Fatalf("Verify of re-hashed log = %v, want tlog.ErrRootMismatch", err)
	}
	// A checkpoint under another key.
	dirD, _ := buildLog(t, 1)
	other := openSeeded(t, t.TempDir(), 2)
	defer other.Close()
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: auditor.Source{Log: dirD, Key: other.VerifierKey()}}); !errors.Is(err, tlog.ErrCheckpoint) {
		t.Fatalf("Verify under another key = %v, want tlog.ErrCheckpoint", err)
	}
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openSeeded(t, dir, 1)
	defer l.Close()
	appendInOrder(t, l, audittest.Records(0, 10))
	old := checkpointOf(t, dir)
	mux := http.NewServeMux()
	mux.Handle("/audit/", http.StripPrefix("/audit/", l.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// The partial tiles of size 10 are deleted once the tile is full; proofs against the old
	// checkpoint still work from a prefix of the full tile.
	appendInOrder(t, l, audittest.Records(10, 300))
	src := auditor.Source{Log: srv.URL + "/audit", Key: l.VerifierKey()}
	if _, err := auditor.Verify(ctx, auditor.VerifyOptions{Source: src, Trusted: old}); err != nil {
		t.Fatal(err)
	}
	// Partial tiles go once the full tile is durable: in the background, or now with Sync.
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, publicDir, "tile/0/000.p")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("partial tiles of a full tile still there: %v", err)
	}
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/audit/checkpoint", 200},
		{"HEAD", "/audit/tile/0/000", 200},
		{"GET", "/audit/tile/0/000.p/10", 200},
		{"GET", "/audit/tile/entries/000.p/10", 200},
		{"GET", "/audit/tile/0/0", 404},
		{"GET", "/audit/tile/0/x000/000", 404},
		{"GET", "/audit/../note.key", 404},
		{"GET", "/audit/note.key", 404},
		{"GET", "/audit/tile/0/005", 404},
		{"POST", "/audit/checkpoint", 405},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
	}
	resp, err := http.Get(srv.URL + "/audit/tile/0/000.p/10")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != 10*32 {
		t.Fatalf("partial tile from full one: %d bytes", resp.ContentLength)
	}
}
