package audit

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

// seedKey is a fixed note key seed, so that golden files are stable.
func openSeeded(t testing.TB, dir string, seed uint64) *Log {
	t.Helper()
	var s [32]byte
	s[0] = byte(seed)
	l, err := OpenLocal(context.Background(), LocalOptions{Dir: dir, Rand: rand.NewChaCha8(s)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendInOrder queues records in order from one goroutine, so that the log's content is
// deterministic while the writer still batches them.
func appendInOrder(t testing.TB, l *Log, recs []*Record) {
	t.Helper()
	var waits []chan groupRes
	for _, r := range recs {
		b, err := Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		req := &groupReq{data: b, res: make(chan groupRes, 1)}
		if err := l.gc.enqueue(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		waits = append(waits, req.res)
	}
	for _, ch := range waits {
		if r := <-ch; r.err != nil {
			t.Fatal(r.err)
		}
	}
}

func records(from, to int) []*Record {
	var rs []*Record
	for i := from; i < to; i++ {
		rs = append(rs, testRecord(i))
	}
	return rs
}

// buildLog makes a log of n deterministic records and returns its dir and verifier key.
func buildLog(t testing.TB, n int) (string, string) {
	t.Helper()
	dir := t.TempDir()
	l := openSeeded(t, dir, 1)
	defer l.Close()
	appendInOrder(t, l, records(0, n))
	return dir, l.VerifierKey()
}

func checkpointOf(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, publicDir, "checkpoint"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuditorGolden(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openSeeded(t, dir, 1)
	defer l.Close()
	appendInOrder(t, l, records(0, 100))
	old := checkpointOf(t, dir)
	appendInOrder(t, l, records(100, 300))
	src := Source{Log: dir, Key: l.VerifierKey()}

	var buf bytes.Buffer
	if _, err := Verify(ctx, &buf, VerifyOptions{Source: src, Trusted: old}); err != nil {
		t.Fatal(err)
	}
	golden(t, "verify.golden", buf.Bytes())

	for _, idx := range []uint64{0, 5, 299} {
		buf.Reset()
		ip, err := Prove(ctx, &buf, ProveOptions{Source: src, Index: idx})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyInclusion(ip, checkpointOf(t, dir), src.Key); err != nil {
			t.Fatalf("VerifyInclusion(%d): %v", idx, err)
		}
		parsed, err := ParseInclusionProof(buf.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyInclusion(parsed, checkpointOf(t, dir), src.Key); err != nil {
			t.Fatalf("VerifyInclusion(parsed %d): %v", idx, err)
		}
		parsed.Index++
		if _, err := VerifyInclusion(parsed, checkpointOf(t, dir), src.Key); err == nil {
			t.Fatalf("proof of %d verified for %d", idx, parsed.Index)
		}
		golden(t, fmt.Sprintf("prove-%03d.golden", idx), buf.Bytes())
	}
	if _, err := Prove(ctx, &buf, ProveOptions{Source: src, Index: 300}); err == nil {
		t.Fatal("Prove(300) of a log of 300 succeeded")
	}

	buf.Reset()
	if _, err := Consistency(ctx, &buf, ConsistencyOptions{Source: src, Old: old}); err != nil {
		t.Fatal(err)
	}
	golden(t, "consistency.golden", buf.Bytes())

	for _, tc := range []struct {
		name string
		o    SearchOptions
	}{
		{"search-measurement.jsonl", SearchOptions{Measurement: strings.ToUpper(testRecord(2).Measurement), Until: t0.Add(30 * time.Second)}},
		{"search-bare-name.jsonl", SearchOptions{Name: "dek/radiology-4", Event: EventGenerateDataKey, Until: t0.Add(20 * time.Second)}},
		{"search-name-deny.csv", SearchOptions{Name: "data_key:dek/radiology-3", Verdict: VerdictDeny, Format: FormatCSV, Since: t0.Add(10 * time.Second), Until: t0.Add(100 * time.Second)}},
	} {
		buf.Reset()
		tc.o.Source = src
		if err := Search(ctx, &buf, tc.o); err != nil {
			t.Fatal(err)
		}
		golden(t, tc.name, buf.Bytes())
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
		es, err := parseBundle(b, w)
		if err != nil {
			panic(err)
		}
		return appendBundle(nil, f(es))
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
		}, 259, ErrInvalidRecord},
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
		{"checkpoint signature", func(t *testing.T, dir string) { tamper(t, dir, "checkpoint", flip(-3)) }, -1, ErrCheckpoint},
		{"checkpoint size", func(t *testing.T, dir string) {
			tamper(t, dir, "checkpoint", func(b []byte) []byte { return bytes.Replace(b, []byte("\n300\n"), []byte("\n299\n"), 1) })
		}, -1, ErrCheckpoint},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, vkey := buildLog(t, n)
			tc.edit(t, dir)
			_, err := Verify(context.Background(), new(bytes.Buffer), VerifyOptions{Source: Source{Log: dir, Key: vkey}})
			if err == nil {
				t.Fatal("tampered log verified")
			}
			var ee *EntryError
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
	forged := records(0, 150)
	forged[42].Verdict = VerdictAllow
	forged[42].Reason = "rewritten"
	appendInOrder(t, lb, forged)
	lb.Close()
	src := Source{Log: dirB, Key: vkey}

	if _, err := Verify(ctx, new(bytes.Buffer), VerifyOptions{Source: src}); err != nil {
		t.Fatalf("the fork alone is a valid log: %v", err)
	}
	if _, err := Verify(ctx, new(bytes.Buffer), VerifyOptions{Source: src, Trusted: oldA}); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Verify with trusted = %v, want ErrInconsistent", err)
	}
	if _, err := Consistency(ctx, new(bytes.Buffer), ConsistencyOptions{Source: src, Old: oldA}); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Consistency = %v, want ErrInconsistent", err)
	}
	state := filepath.Join(t.TempDir(), "witness")
	if _, err := Witness(ctx, new(bytes.Buffer), WitnessOptions{Source: Source{Log: dirA, Key: vkey}, State: state}); err != nil {
		t.Fatal(err)
	}
	if _, err := Witness(ctx, new(bytes.Buffer), WitnessOptions{Source: src, State: state}); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("Witness of the fork = %v, want ErrInconsistent", err)
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
	if _, err := Verify(ctx, new(bytes.Buffer), VerifyOptions{Source: Source{Log: dirC, Key: vkey}}); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("Verify of re-hashed log = %v, want ErrRootMismatch", err)
	}
	// A checkpoint under another key.
	dirD, _ := buildLog(t, 1)
	other := openSeeded(t, t.TempDir(), 2)
	defer other.Close()
	if _, err := Verify(ctx, new(bytes.Buffer), VerifyOptions{Source: Source{Log: dirD, Key: other.VerifierKey()}}); !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("Verify under another key = %v, want ErrCheckpoint", err)
	}
}

func TestWitnessGrows(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openSeeded(t, dir, 1)
	defer l.Close()
	state := filepath.Join(t.TempDir(), "state")
	src := Source{Log: dir, Key: l.VerifierKey()}
	var out bytes.Buffer
	for _, n := range []int{0, 3, 3, 260, 600} {
		appendInOrder(t, l, records(int(l.st.size), n))
		if _, err := Witness(ctx, &out, WitnessOptions{Source: src, State: state, Full: true}); err != nil {
			t.Fatalf("at %d: %v", n, err)
		}
	}
	golden(t, "witness.golden", out.Bytes())
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l := openSeeded(t, dir, 1)
	defer l.Close()
	appendInOrder(t, l, records(0, 10))
	old := checkpointOf(t, dir)
	mux := http.NewServeMux()
	mux.Handle("/audit/", http.StripPrefix("/audit/", l.Handler()))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// The partial tiles of size 10 are deleted once the tile is full; proofs against the old
	// checkpoint still work from a prefix of the full tile.
	appendInOrder(t, l, records(10, 300))
	src := Source{Log: srv.URL + "/audit", Key: l.VerifierKey()}
	if _, err := Verify(ctx, new(bytes.Buffer), VerifyOptions{Source: src, Trusted: old}); err != nil {
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
