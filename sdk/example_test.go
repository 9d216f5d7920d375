package sdk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk"
)

// In a real confidential VM the provider comes from enclave/snpguest, enclave/tdxguest or enclave/ego;
// the examples use the insecure simulated TEE against a local trustd in --dev mode.
func newClient(ctx context.Context, addr string) *sdk.Client {
	c, err := sdk.New(ctx, sdk.Options{
		Addr:     addr,
		Insecure: true, // plaintext gRPC: only for a local trustd in --dev mode
		Provider: simguest.NewInsecure(simguest.Options{Measurement: imageMeasurement, SVN: 1}),
	})
	if err != nil {
		log.Fatal(err)
	}
	return c
}

func ExampleNew() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()

	c, err := sdk.New(ctx, sdk.Options{
		Addr:     addr,
		Insecure: true,
		Provider: simguest.NewInsecure(simguest.Options{Measurement: imageMeasurement, SVN: 1}),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// The client attests on first use and again before its token expires.
	token, err := c.Secret(ctx, "clinic/api-token")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("secret bytes:", token.Len())
	// Output: secret bytes: 13
}

func ExampleClient_Attest() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	att, err := c.Attest(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("policy:", att.Policy)
	for _, g := range att.Grants {
		fmt.Println("grant:", g.Kind, g.Name)
	}
	// Output:
	// policy: clinic-app
	// grant: secret clinic/api-token
	// grant: data_key clinic/records
}

func ExampleDeniedError() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	tampered, _ := sdk.New(ctx, sdk.Options{Addr: addr, Insecure: true,
		Provider: simguest.NewInsecure(simguest.Options{Measurement: []byte("some other image")})})
	defer tampered.Close()

	_, err := tampered.Secret(ctx, "clinic/api-token")
	var denied *sdk.DeniedError
	if errors.As(err, &denied) {
		fmt.Println("denied on claim:", denied.Claim)
	}
	// Output: denied on claim: measurement
}

func ExampleClient_Secret() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	s, err := c.Secret(ctx, "clinic/api-token")
	if err != nil {
		log.Fatal(err)
	}
	defer s.Wipe()
	// Use s.Reveal() where the secret is needed; never log it (fmt prints "[redacted]").
	fmt.Println(s)
	// Output: [redacted]
}

func ExampleClient_KeySource() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	kc := kms.Context{"tenant": "uk-freiburg", "case": "c-1042"}
	ks := c.KeySource() // raw data keys, for code written against envelope.KeySource
	dek, wrapped, err := ks.GenerateDataKey(ctx, "clinic/records", kc)
	if err != nil {
		log.Fatal(err)
	}
	defer dek.Wipe()
	fmt.Println("data key bytes:", dek.Len(), "wrapped:", len(wrapped) > 0)
	// Output: data key bytes: 32 wrapped: true
}

func ExampleClient_KeySource_unwrap() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	kc := kms.Context{"tenant": "uk-freiburg", "case": "c-1042"}
	ks := c.KeySource()
	dek, wrapped, _ := ks.GenerateDataKey(ctx, "clinic/records", kc)
	again, err := ks.UnwrapDataKey(ctx, "clinic/records", wrapped, kc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same key:", again.Equal(dek))
	_, err = ks.UnwrapDataKey(ctx, "clinic/records", wrapped, kms.Context{"tenant": "uk-freiburg", "case": "c-9999"})
	fmt.Println("other case opens:", err == nil, "refused as a key store would:", errors.Is(err, kms.ErrBadWrapped))
	// Output:
	// same key: true
	// other case opens: false refused as a key store would: true
}

func ExampleClient_Encrypt() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	kc := kms.Context{"tenant": "uk-freiburg", "case": "c-1042", "content-type": "application/fhir+json"}
	ct, err := c.Encrypt(ctx, "clinic/records", kc, []byte(`{"resourceType":"Observation"}`))
	if err != nil {
		log.Fatal(err)
	}
	pt, err := c.Decrypt(ctx, kc, ct)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(pt))
	// Output: {"resourceType":"Observation"}
}

func ExampleClient_Decrypt() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	kc := kms.Context{"tenant": "uk-freiburg", "case": "c-1042"}
	ct, _ := c.Encrypt(ctx, "clinic/records", kc, []byte("lactate 2.1 mmol/l"))
	// A ciphertext moved to another case does not open.
	_, err := c.Decrypt(ctx, kms.Context{"tenant": "uk-freiburg", "case": "c-7"}, ct)
	fmt.Println("opens under another case:", err == nil)
	// Output: opens under another case: false
}

func ExampleClient_NewWriter() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	kc := kms.Context{"tenant": "uk-freiburg", "case": "c-1042", "content-type": "application/dicom"}
	var stored bytes.Buffer // a file or an object store upload in practice
	w, err := c.NewWriter(ctx, &stored, "clinic/records", kc)
	if err != nil {
		log.Fatal(err)
	}
	image := bytes.Repeat([]byte{0x42}, 300<<10) // stands in for a multi-GB study
	if _, err := io.Copy(w, bytes.NewReader(image)); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil { // writes the final chunk: never skip it
		log.Fatal(err)
	}
	fmt.Println("ciphertext larger than plaintext:", stored.Len() > len(image))
	// Output: ciphertext larger than plaintext: true
}

func ExampleClient_NewReader() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	kc := kms.Context{"tenant": "uk-freiburg", "case": "c-1042"}
	var stored bytes.Buffer
	w, _ := c.NewWriter(ctx, &stored, "clinic/records", kc)
	w.Write(bytes.Repeat([]byte("x"), 200<<10))
	w.Close()

	ct := stored.Bytes()
	r, err := c.NewReader(ctx, bytes.NewReader(ct), kc)
	if err != nil {
		log.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	fmt.Println(n, err)

	// A truncated stream is an error, never a silent short read.
	cut := ct[:len(ct)-100]
	r, _ = c.NewReader(ctx, bytes.NewReader(cut), kc)
	_, err = io.Copy(io.Discard, r)
	fmt.Println("truncation detected:", err != nil)
	// Output:
	// 204800 <nil>
	// truncation detected: true
}

func ExampleClient_NewReaderAt() {
	addr, stop := devTrustd()
	defer stop()
	ctx := context.Background()
	c := newClient(ctx, addr)
	defer c.Close()

	kc := kms.Context{"tenant": "uk-freiburg", "case": "c-1042"}
	var stored bytes.Buffer
	w, _ := c.NewWriter(ctx, &stored, "clinic/records", kc)
	for i := range 4 {
		w.Write(bytes.Repeat([]byte{byte('a' + i)}, 64<<10))
	}
	w.Close()

	ra, err := c.NewReaderAt(ctx, bytes.NewReader(stored.Bytes()), int64(stored.Len()), kc)
	if err != nil {
		log.Fatal(err)
	}
	p := make([]byte, 4)
	ra.ReadAt(p, 3*64<<10-2) // decrypts only the two chunks it touches
	fmt.Println(ra.Size(), string(p))
	// Output: 262144 ccdd
}
