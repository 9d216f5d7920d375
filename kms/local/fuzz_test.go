package local

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/medicus-cloud/trust/kms"
)

// FuzzUnwrap: a wrapped key comes from the client (UnwrapDataKey's request). Whatever bytes
// arrive, with whatever context, the keyring answers ErrBadWrapped (or opens the one key it
// really wrapped, under its own name and context), and never panics.
func FuzzUnwrap(f *testing.F) {
	k, err := Open(Options{Path: filepath.Join(f.TempDir(), "keyring"), MasterKey: master(7)})
	if err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	if err := k.CreateKey(ctx, "t/k"); err != nil {
		f.Fatal(err)
	}
	own := kms.MustBind("t/k", kms.Context{"case": "42"})
	dk, err := k.GenerateDataKey(ctx, own)
	if err != nil {
		f.Fatal(err)
	}
	genuine := dk.Wrapped
	f.Add(genuine, "42")
	f.Add(genuine, "43")
	flipped := bytes.Clone(genuine)
	flipped[len(flipped)-1] ^= 1
	f.Add(flipped, "42")
	f.Add(append([]byte(wrappedMagic), 0, 0, 0, 9), "42")
	f.Add([]byte{}, "")
	f.Fuzz(func(t *testing.T, wrapped []byte, caseID string) {
		b, err := kms.Bind("t/k", kms.Context{"case": caseID})
		if err != nil {
			return // refused before any store sees it
		}
		pt, err := k.UnwrapDataKey(ctx, b, wrapped)
		if err == nil {
			if !bytes.Equal(wrapped, genuine) || caseID != "42" || !bytes.Equal(pt.Reveal(), dk.Plaintext.Reveal()) {
				t.Fatalf("unwrapped %x under case %q", wrapped, caseID)
			}
			return
		}
		if pt != nil || !errors.Is(err, kms.ErrBadWrapped) {
			t.Fatalf("got %v, %v; want ErrBadWrapped", pt, err)
		}
	})
}
