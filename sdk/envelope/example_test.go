package envelope_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/sdk/envelope"
	"github.com/medicus-cloud/trust/secret"
)

// keySource stands in for an *sdk.Client: a real local keyring in a temporary directory.
// Workloads pass their *sdk.Client instead, which fetches keys from trustd after attesting.
func keySource() (envelope.KeySource, func()) {
	dir, err := os.MkdirTemp("", "envelope-example")
	if err != nil {
		log.Fatal(err)
	}
	kr, err := local.Open(local.Options{Path: filepath.Join(dir, "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{1}, 32))})
	if err != nil {
		log.Fatal(err)
	}
	if err := kr.CreateKey(context.Background(), "records/vitals"); err != nil {
		log.Fatal(err)
	}
	return envelope.FromKeyStore(kr), func() { os.RemoveAll(dir) }
}

var caseCtx = kms.Context{"tenant": "north-clinic", "case": "c-1042", "content-type": "application/fhir+json"}

func ExampleEncrypt() {
	ks, done := keySource()
	defer done()
	ctx := context.Background()

	ct, err := envelope.Encrypt(ctx, ks, "records/vitals", caseCtx, []byte(`{"heartRate":118}`))
	if err != nil {
		log.Fatal(err)
	}
	// The key name travels in the header: Decrypt needs only the context.
	pt, err := envelope.Decrypt(ctx, ks, caseCtx, ct)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output: {"heartRate":118}
}

func ExampleDecrypt() {
	ks, done := keySource()
	defer done()
	ctx := context.Background()
	ct, _ := envelope.Encrypt(ctx, ks, "records/vitals", caseCtx, []byte("ward 3"))

	// Under another case the object does not open, whoever asks: the key store will not unwrap
	// its data key for that context (the header stores nothing of the context).
	other := kms.Context{"tenant": "north-clinic", "case": "c-2000", "content-type": "application/fhir+json"}
	_, err := envelope.Decrypt(ctx, ks, other, ct)
	fmt.Println(err)

	// A single flipped bit is caught before any plaintext is returned.
	ct[len(ct)-1] ^= 1
	_, err = envelope.Decrypt(ctx, ks, caseCtx, ct)
	fmt.Println(err)
	// Output:
	// envelope: object was sealed under another context: the key store does not open its data key under "records/vitals" and this context (or the header's wrapped key was altered): wrapped key rejected: does not open under key "records/vitals" and this context
	// envelope: chunk failed authentication: chunk 0
}

func ExampleNewWriter() {
	ks, done := keySource()
	defer done()
	ctx := context.Background()

	var stored bytes.Buffer // a file or an object store upload in real use
	w, err := envelope.NewWriter(ctx, ks, &stored, "records/vitals", caseCtx, nil)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := io.Copy(w, strings.NewReader(strings.Repeat("HR 118; RR 24; SBP 95\n", 10000))); err != nil {
		log.Fatal(err)
	}
	// Close writes the final chunk; without it the object reads as truncated.
	if err := w.Close(); err != nil {
		log.Fatal(err)
	}
	fmt.Println(stored.Len() > 220000)
	// Output: true
}

func ExampleNewReader() {
	ks, done := keySource()
	defer done()
	ctx := context.Background()
	var stored bytes.Buffer
	w, _ := envelope.NewWriter(ctx, ks, &stored, "records/vitals", caseCtx, &envelope.Options{ChunkSize: 4096})
	io.Copy(w, strings.NewReader(strings.Repeat("x", 10000)))
	w.Close()

	r, err := envelope.NewReader(ctx, ks, &stored, caseCtx)
	if err != nil {
		log.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r) // io.EOF only after the final chunk authenticated
	fmt.Println(n, err)
	// Output: 10000 <nil>
}

func ExampleNewReaderAt() {
	ks, done := keySource()
	defer done()
	ctx := context.Background()
	image := bytes.Repeat([]byte("0123456789"), 100000) // a 1 MB imaging series, say
	ct, _ := envelope.Encrypt(ctx, ks, "records/vitals", caseCtx, image)

	// Random access decrypts only the chunks a read covers.
	ra, err := envelope.NewReaderAt(ctx, ks, bytes.NewReader(ct), int64(len(ct)), caseCtx)
	if err != nil {
		log.Fatal(err)
	}
	frame := make([]byte, 10)
	if _, err := ra.ReadAt(frame, 700003); err != nil {
		log.Fatal(err)
	}
	fmt.Println(ra.Size(), string(frame))
	// Output: 1000000 3456789012
}

func ExampleNewCachingKeySource() {
	ks, done := keySource()
	defer done()
	ctx := context.Background()
	ct, _ := envelope.Encrypt(ctx, ks, "records/vitals", caseCtx, []byte("obs 1"))

	// Reading the same objects again within a minute calls the key source once.
	cache := envelope.NewCachingKeySource(ks, envelope.CacheOptions{MaxEntries: 1000, TTL: time.Minute})
	defer cache.Purge() // wipe the keys on shutdown
	for range 3 {
		if _, err := envelope.Decrypt(ctx, cache, caseCtx, ct); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println(cache.Len())
	// Output: 1
}

func ExampleFromKeyStore() {
	dir, _ := os.MkdirTemp("", "keyring")
	defer os.RemoveAll(dir)
	kr, err := local.Open(local.Options{Path: filepath.Join(dir, "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{1}, 32))})
	if err != nil {
		log.Fatal(err)
	}
	kr.CreateKey(context.Background(), "tools/export")

	// A process that holds the key store itself (trustd, a local tool) needs no client.
	ks := envelope.FromKeyStore(kr)
	ct, err := envelope.Encrypt(context.Background(), ks, "tools/export", nil, []byte("report"))
	fmt.Println(len(ct) > 0, err)
	// Output: true <nil>
}
