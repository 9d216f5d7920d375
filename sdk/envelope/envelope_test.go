package envelope

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"pgregory.net/rapid"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/secret"
)

const testKey = "records/main"

var update = flag.Bool("update", false, "rewrite testdata/record.mtenv and testdata/keyring")

var caseCtx = kms.Context{"tenant": "north-clinic", "case": "c-1042", "content-type": "application/fhir+json"}

// openKeyring opens (or creates) a real local keyring at path with a fixed master key.
func openKeyring(t testing.TB, path string) *local.Keyring {
	t.Helper()
	kr, err := local.Open(local.Options{Path: path, MasterKey: secret.New(bytes.Repeat([]byte{0x4d}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

// localSource is a KeySource over a new local keyring in a temporary directory, with testKey.
func localSource(t testing.TB) KeySource {
	t.Helper()
	kr := openKeyring(t, filepath.Join(t.TempDir(), "keyring"))
	if err := kr.CreateKey(context.Background(), testKey); err != nil {
		t.Fatal(err)
	}
	return FromKeyStore(kr)
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// fataler is what both testing.TB and *rapid.T offer.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// sealWith encrypts through NewWriter in writes of step bytes.
func sealWith(t fataler, ks KeySource, kc kms.Context, pt []byte, chunk, step int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(context.Background(), ks, &buf, testKey, kc, &Options{ChunkSize: chunk})
	if err != nil {
		t.Fatal(err)
	}
	for p := pt; len(p) > 0; {
		n := min(step, len(p))
		if _, err := w.Write(p[:n]); err != nil {
			t.Fatal(err)
		}
		p = p[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var errDisagree = errors.New("readers disagree")

// typed are the errors a bad object may cause.
var typed = []error{ErrNotEnvelope, ErrUnsupportedVersion, ErrUnsupportedSuite, ErrMalformedHeader, ErrWrongContext,
	ErrHeaderAuth, ErrChunkAuth, ErrTruncated, ErrTrailingData, kms.ErrBadWrapped, kms.ErrNotFound, kms.ErrInvalidName}

func isTyped(err error) bool {
	for _, e := range typed {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// openEvery opens ct with Decrypt, NewReader and NewReaderAt, checks that they agree, and
// returns the first error and what NewReader had returned before it.
func openEvery(ks KeySource, kc kms.Context, ct []byte) ([]byte, error) {
	ctx := context.Background()
	pt, errD := Decrypt(ctx, ks, kc, ct)
	var streamed []byte
	r, errR := NewReader(ctx, ks, bytes.NewReader(ct), kc)
	if errR == nil {
		streamed, errR = io.ReadAll(r)
	}
	var at []byte
	ra, errA := NewReaderAt(ctx, ks, bytes.NewReader(ct), int64(len(ct)), kc)
	if errA == nil {
		at = make([]byte, ra.Size())
		if len(at) > 0 {
			var n int
			n, errA = ra.ReadAt(at, 0)
			at = at[:n]
		}
	}
	if (errD == nil) != (errR == nil) || (errD == nil) != (errA == nil) {
		return nil, fmt.Errorf("%w: Decrypt %v, NewReader %v, NewReaderAt %v", errDisagree, errD, errR, errA)
	}
	if errD != nil {
		if pt != nil {
			return nil, fmt.Errorf("%w: Decrypt returned plaintext with error %v", errDisagree, errD)
		}
		return streamed, errD
	}
	if !bytes.Equal(pt, streamed) || !bytes.Equal(pt, at) {
		return nil, fmt.Errorf("%w: different plaintexts", errDisagree)
	}
	return pt, nil
}

func TestRoundTrip(t *testing.T) {
	ks := localSource(t)
	ctx := context.Background()
	for _, chunk := range []int{MinChunkSize, 1000, DefaultChunkSize} {
		for _, n := range []int{0, 1, chunk - 1, chunk, chunk + 1, 3 * chunk, 3*chunk + 17} {
			t.Run(fmt.Sprintf("chunk=%d/n=%d", chunk, n), func(t *testing.T) {
				pt := pattern(n)
				for _, step := range []int{1 + n/3, 7} {
					if n > 4*MinChunkSize && step == 7 {
						continue
					}
					got, err := openEvery(ks, caseCtx, sealWith(t, ks, caseCtx, pt, chunk, step))
					if err != nil || !bytes.Equal(got, pt) {
						t.Fatalf("step %d: %v", step, err)
					}
				}
				ct, err := encrypt(ctx, ks, testKey, caseCtx, pt, &Options{ChunkSize: chunk})
				if err != nil {
					t.Fatal(err)
				}
				if len(ct) != headerLen(t, ct)+n+stream16(n, chunk) {
					t.Fatalf("Encrypt made %d bytes", len(ct))
				}
				got, err := openEvery(ks, caseCtx, ct)
				if err != nil || !bytes.Equal(got, pt) {
					t.Fatalf("Encrypt: %v", err)
				}
			})
		}
	}
	ct, err := Encrypt(ctx, ks, testKey, nil, []byte("no context at all"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Decrypt(ctx, ks, nil, ct); err != nil || string(got) != "no context at all" {
		t.Fatalf("empty context: %q, %v", got, err)
	}
}

// stream16 is the tag overhead of n bytes in chunks of c.
func stream16(n, c int) int { return 16 * max(1, (n+c-1)/c) }

func TestEncryptErrors(t *testing.T) {
	ks := localSource(t)
	ctx := context.Background()
	tests := []struct {
		name string
		key  string
		kc   kms.Context
		opts *Options
		want error
	}{
		{"invalid key name", "Records/../x", caseCtx, nil, kms.ErrInvalidName},
		{"unknown key", "records/other", caseCtx, nil, kms.ErrNotFound},
		{"invalid context", testKey, kms.Context{"Bad Key": "x"}, nil, kms.ErrBadContext},
		{"chunk too small", testKey, caseCtx, &Options{ChunkSize: MinChunkSize - 1}, nil},
		{"chunk too large", testKey, caseCtx, &Options{ChunkSize: MaxChunkSize + 1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewWriter(ctx, ks, io.Discard, tc.key, tc.kc, tc.opts)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// headerLen returns the length of the header at the start of ct.
func headerLen(t testing.TB, ct []byte) int {
	t.Helper()
	_, raw, err := parseHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	return len(raw)
}

func TestTamper(t *testing.T) {
	ks := localSource(t)
	const chunk = MinChunkSize
	pt := pattern(4*chunk + 9)
	ct := sealWith(t, ks, caseCtx, pt, chunk, len(pt))
	other := sealWith(t, ks, caseCtx, pattern(4*chunk+9), chunk, len(pt))
	hl := headerLen(t, ct)
	enc := chunk + 16
	body := ct[hl:]
	mod := func(f func(c []byte) []byte) []byte { return f(bytes.Clone(ct)) }
	otherCtx := kms.Context{"tenant": "north-clinic", "case": "c-9999", "content-type": "application/fhir+json"}
	nameAt := fixedPrefix // first byte of the key name
	tests := []struct {
		name string
		ct   []byte
		kc   kms.Context
		want error
	}{
		{"bad magic", mod(func(c []byte) []byte { c[0] ^= 1; return c }), caseCtx, ErrNotEnvelope},
		{"empty", nil, caseCtx, ErrNotEnvelope},
		{"unknown version", mod(func(c []byte) []byte { c[6] = 3; return c }), caseCtx, ErrUnsupportedVersion},
		{"version 1 claimed", mod(func(c []byte) []byte { c[6] = 1; return c }), caseCtx, ErrWrongContext},
		{"unknown suite", mod(func(c []byte) []byte { c[7] = 9; return c }), caseCtx, ErrUnsupportedSuite},
		{"chunk size out of range", mod(func(c []byte) []byte { c[8] = 0xff; return c }), caseCtx, ErrMalformedHeader},
		{"chunk size changed", mod(func(c []byte) []byte { c[10] ^= 4; return c }), caseCtx, ErrHeaderAuth},
		{"key name not a name", mod(func(c []byte) []byte { c[nameAt] = 'R'; return c }), caseCtx, ErrMalformedHeader},
		{"key name changed", mod(func(c []byte) []byte { c[nameAt] = 'x'; return c }), caseCtx, kms.ErrNotFound},
		{"wrapped key changed", mod(func(c []byte) []byte { c[nameAt+len(testKey)+2+20] ^= 1; return c }), caseCtx, kms.ErrBadWrapped},
		{"header cut short", ct[:hl-1], caseCtx, ErrMalformedHeader},
		{"salt changed", mod(func(c []byte) []byte { c[hl-macSize-1] ^= 1; return c }), caseCtx, ErrHeaderAuth},
		{"MAC changed", mod(func(c []byte) []byte { c[hl-1] ^= 1; return c }), caseCtx, ErrHeaderAuth},
		// A version 2 header stores nothing of the context: the key store refuses the unwrap.
		{"wrong context", ct, otherCtx, ErrWrongContext},
		{"wrong context, as the key store says", ct, otherCtx, kms.ErrBadWrapped},
		{"flipped bit in a chunk", mod(func(c []byte) []byte { c[hl+2*enc+3] ^= 0x80; return c }), caseCtx, ErrChunkAuth},
		{"flipped bit in the last tag", mod(func(c []byte) []byte { c[len(c)-1] ^= 1; return c }), caseCtx, ErrChunkAuth},
		{"no chunks", ct[:hl], caseCtx, ErrTruncated},
		{"truncated at a chunk boundary", ct[:hl+3*enc], caseCtx, ErrTruncated},
		{"truncated inside a chunk", ct[:hl+3*enc+100], caseCtx, ErrChunkAuth},
		{"extended", append(bytes.Clone(ct), 0, 0, 0), caseCtx, ErrChunkAuth},
		{"swapped chunks", mod(func(c []byte) []byte {
			copy(c[hl:], body[enc:2*enc])
			copy(c[hl+enc:], body[:enc])
			return c
		}), caseCtx, ErrChunkAuth},
		{"chunk from another object", mod(func(c []byte) []byte {
			copy(c[hl+enc:], other[hl+enc:hl+2*enc])
			return c
		}), caseCtx, ErrChunkAuth},
		{"header from another object", append(bytes.Clone(other[:hl]), body...), caseCtx, ErrChunkAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := openEvery(ks, tc.kc, tc.ct)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if len(got)%chunk != 0 || !bytes.Equal(got, pt[:len(got)]) {
				t.Fatalf("%d bytes of unauthenticated plaintext returned", len(got))
			}
		})
	}
}

// TestTamperProperty: whatever single bit is flipped, and wherever the object is cut or
// extended, every reader fails and none returns more than whole authenticated chunks.
func TestTamperProperty(t *testing.T) {
	ks := localSource(t)
	rapid.Check(t, func(rt *rapid.T) {
		chunk := rapid.SampledFrom([]int{MinChunkSize, 300, 1024}).Draw(rt, "chunk")
		pt := rapid.SliceOfN(rapid.Byte(), 0, 5*chunk).Draw(rt, "plaintext")
		step := rapid.IntRange(1, len(pt)+1).Draw(rt, "step")
		ct := sealWith(rt, ks, caseCtx, pt, chunk, step)
		got, err := openEvery(ks, caseCtx, ct)
		if err != nil || !bytes.Equal(got, pt) {
			rt.Fatalf("round trip: %v", err)
		}
		bad := bytes.Clone(ct)
		switch rapid.IntRange(0, 2).Draw(rt, "how") {
		case 0:
			i := rapid.IntRange(0, len(ct)-1).Draw(rt, "byte")
			bad[i] ^= 1 << rapid.IntRange(0, 7).Draw(rt, "bit")
		case 1:
			bad = bad[:rapid.IntRange(0, len(ct)-1).Draw(rt, "cut")]
		case 2:
			bad = append(bad, rapid.SliceOfN(rapid.Byte(), 1, 2*chunk).Draw(rt, "tail")...)
		}
		got, err = openEvery(ks, caseCtx, bad)
		if err == nil || !isTyped(err) {
			rt.Fatalf("tampered object: %v", err)
		}
		if len(got)%chunk != 0 || !bytes.Equal(got, pt[:len(got)]) {
			rt.Fatalf("%d bytes of unauthenticated plaintext returned", len(got))
		}
	})
}

func TestReaderAtRandom(t *testing.T) {
	ks := localSource(t)
	pt := pattern(10*MinChunkSize + 77)
	ct := sealWith(t, ks, caseCtx, pt, MinChunkSize, len(pt))
	ra, err := NewReaderAt(context.Background(), ks, bytes.NewReader(ct), int64(len(ct)), caseCtx)
	if err != nil {
		t.Fatal(err)
	}
	if ra.Size() != int64(len(pt)) {
		t.Fatalf("Size = %d, want %d", ra.Size(), len(pt))
	}
	rapid.Check(t, func(rt *rapid.T) {
		off := rapid.IntRange(0, len(pt)+10).Draw(rt, "off")
		n := rapid.IntRange(0, 3*MinChunkSize).Draw(rt, "n")
		p := make([]byte, n)
		got, err := ra.ReadAt(p, int64(off))
		want := pt[min(off, len(pt)):min(off+n, len(pt))]
		if !bytes.Equal(p[:got], want) {
			rt.Fatalf("ReadAt(%d, %d) returned the wrong bytes", n, off)
		}
		if got < n && err != io.EOF {
			rt.Fatalf("short read without io.EOF: %v", err)
		}
	})
}

// TestVector opens an object written by an earlier build, so a change of format is noticed.
// Regenerate with -update only for a new format version.
func TestVector(t *testing.T) {
	ctx := context.Background()
	want := []byte(`{"resourceType":"Observation","code":"8867-4","valueQuantity":{"value":118,"unit":"/min"}}` + "\n")
	if *update {
		dir := t.TempDir()
		kr := openKeyring(t, filepath.Join(dir, "keyring"))
		if err := kr.CreateKey(ctx, testKey); err != nil {
			t.Fatal(err)
		}
		ct, err := Encrypt(ctx, FromKeyStore(kr), testKey, caseCtx, want)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(filepath.Join(dir, "keyring"))
		os.WriteFile("testdata/keyring", raw, 0o600)
		os.WriteFile("testdata/record.mtenv", ct, 0o644)
	}
	dir := t.TempDir()
	raw, err := os.ReadFile("testdata/keyring")
	if err != nil {
		t.Fatal(err)
	}
	// Git does not keep 0600; the keyring refuses looser modes.
	os.WriteFile(filepath.Join(dir, "keyring"), raw, 0o600)
	ks := FromKeyStore(openKeyring(t, filepath.Join(dir, "keyring")))
	ct, err := os.ReadFile("testdata/record.mtenv")
	if err != nil {
		t.Fatal(err)
	}
	got, err := openEvery(ks, caseCtx, ct)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("vector: %q, %v", got, err)
	}
}

// seeds returns real objects: the test vector and fresh ones of several sizes.
func seeds(f *testing.F, ks KeySource) [][]byte {
	out := [][]byte{}
	if v, err := os.ReadFile("testdata/record.mtenv"); err == nil {
		out = append(out, v)
	}
	for _, n := range []int{0, 1, MinChunkSize, 3*MinChunkSize + 5} {
		out = append(out, sealWith(f, ks, caseCtx, pattern(n), MinChunkSize, n+1))
	}
	return out
}

func FuzzHeader(f *testing.F) {
	for _, s := range seeds(f, localSource(f)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, raw, err := parseHeader(bytes.NewReader(b))
		if err != nil {
			return
		}
		if !bytes.HasPrefix(b, raw) {
			t.Fatal("header bytes are not a prefix of the input")
		}
		// Strict and canonical: a parsed header encodes back to exactly what was read.
		enc := append(h.marshalUnsigned(), h.mac...)
		if !bytes.Equal(enc, raw) {
			t.Fatal("parsed header does not re-encode to its input")
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	ks := localSource(f)
	for _, s := range seeds(f, ks) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := openEvery(ks, caseCtx, b)
		if err != nil && (errors.Is(err, errDisagree) || !isTyped(err)) {
			t.Fatal(err)
		}
	})
}

// TestReadsVersion1: objects written before version 2 (whose header stores the context digest)
// still open, and another context is refused before the key source is asked. The object is
// docs/vectors/envelope.json, written by the version 1 SDK.
func TestReadsVersion1(t *testing.T) {
	raw, err := os.ReadFile("../../docs/vectors/envelope.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Context   map[string]string `json:"context"`
		DEK       string            `json:"data_key"`
		Wrapped   string            `json:"wrapped_key"`
		Plaintext string            `json:"plaintext"`
		Object    string            `json:"object"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	dec := func(s string) []byte {
		b, err := hex.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	obj := dec(v.Object)
	if obj[len(magic)] != formatV1 {
		t.Fatalf("the vector is version %d", obj[len(magic)])
	}
	ks := &fixedSource{dek: dec(v.DEK), wrapped: dec(v.Wrapped)}
	got, err := Decrypt(context.Background(), ks, v.Context, obj)
	if err != nil || !bytes.Equal(got, dec(v.Plaintext)) {
		t.Fatalf("version 1 object: %v", err)
	}
	ks.calls = 0
	if _, err := Decrypt(context.Background(), ks, kms.Context{"tenant": "other"}, obj); !errors.Is(err, ErrWrongContext) || ks.calls != 0 {
		t.Fatalf("other context: %v after %d unwraps", err, ks.calls)
	}
}

// fixedSource unwraps one wrapped key to one data key, whatever the context (a key source that
// does not bind contexts), and counts its calls.
type fixedSource struct {
	dek, wrapped []byte
	calls        int
}

func (f *fixedSource) GenerateDataKey(context.Context, string, kms.Context) (*secret.Bytes, []byte, error) {
	return secret.New(bytes.Clone(f.dek)), bytes.Clone(f.wrapped), nil
}

func (f *fixedSource) UnwrapDataKey(_ context.Context, _ string, w []byte, _ kms.Context) (*secret.Bytes, error) {
	f.calls++
	if !bytes.Equal(w, f.wrapped) {
		return nil, errors.New("unknown wrapped key")
	}
	return secret.New(bytes.Clone(f.dek)), nil
}

// TestVersion2BindsTheContext: with a key source that ignores contexts, a version 2 object still
// refuses another context, by its MAC, and its header holds no digest of the context.
func TestVersion2BindsTheContext(t *testing.T) {
	ks := &fixedSource{dek: bytes.Repeat([]byte{7}, 32), wrapped: []byte("wrapped")}
	ct, err := Encrypt(context.Background(), ks, "records/main", caseCtx, []byte("ward 3"))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := caseCtx.Digest(); bytes.Contains(ct, d) {
		t.Fatal("the header stores the context digest")
	}
	if _, err := Decrypt(context.Background(), ks, kms.Context{"tenant": "north-clinic", "case": "c-2000"}, ct); !errors.Is(err, ErrHeaderAuth) {
		t.Fatalf("other context: %v", err)
	}
	if got, err := Decrypt(context.Background(), ks, caseCtx, ct); err != nil || string(got) != "ward 3" {
		t.Fatalf("own context: %q, %v", got, err)
	}
}
