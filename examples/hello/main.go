// Command hello is the demo workload: it runs in the (INSECURE) simulated TEE, attests to a
// trustd in --dev mode, fetches a secret, and encrypts and decrypts a small file with a data key
// that only it and trustd ever see in plaintext (the envelope format of sdk/envelope).
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk"
)

// helloImage is the launch measurement of the demo image, as pinned in policies/examples/hello.yaml.
const helloImage = "6d656469637573207472757374206578616d706c652068656c6c6f20696d616765207631"

func main() {
	addr := flag.String("addr", "127.0.0.1:7443", "trustd address")
	measurement := flag.String("measurement", helloImage, "simulated launch measurement (hex)")
	in := flag.String("in", "", "file to encrypt (default: a sample record)")
	flag.Parse()
	if err := run(*addr, *measurement, *in, os.Stdout); err != nil {
		var d *sdk.DeniedError
		if errors.As(err, &d) {
			fmt.Printf("trustd DENIED this workload: %s is %s, expected %s\n", d.Claim, d.Seen, d.Expected)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

func run(addr, measurement, in string, out io.Writer) error {
	m, err := hex.DecodeString(measurement)
	if err != nil {
		return fmt.Errorf("--measurement: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := sdk.New(ctx, sdk.Options{Addr: addr, Insecure: true,
		Provider: simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1})})
	if err != nil {
		return err
	}
	defer c.Close()

	fmt.Fprintf(out, "hello: attesting to trustd at %s as image %.16s...\n", addr, measurement)
	att, err := c.Attest(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "hello: attested; policy %q granted %d names, token valid until %s\n", att.Policy, len(att.Grants), att.ExpiresAt.Format(time.TimeOnly))

	tok, err := c.Secret(ctx, "hello/api-token")
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "hello: fetched secret hello/api-token (%d bytes; not printed)\n", tok.Len())
	tok.Wipe()

	data := []byte("Patient 4711, ward 3: lactate 2.1 mmol/l, heart rate 112/min.\n")
	if in != "" {
		if data, err = os.ReadFile(in); err != nil {
			return err
		}
	}
	kc := kms.Context{"tenant": "demo-hospital", "case": "4711", "content-type": "text/plain"}
	ct, err := c.Encrypt(ctx, "hello/records", kc, data)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "hello: encrypted %d bytes under a fresh data key from hello/records (%d bytes with header and wrapped key)\n", len(data), len(ct))

	// Reading it back needs only the ciphertext and the same context: the wrapped key is in the
	// header, and trustd unwraps it for this attested workload alone.
	pt, err := c.Decrypt(ctx, kc, ct)
	if err != nil {
		return err
	}
	if sha256.Sum256(pt) != sha256.Sum256(data) {
		return errors.New("decrypted data differs from the original")
	}
	fmt.Fprintf(out, "hello: decrypted %d bytes: round trip OK\n", len(pt))

	other := kms.Context{"tenant": "demo-hospital", "case": "4712", "content-type": "text/plain"}
	if _, err := c.Decrypt(ctx, other, ct); err == nil {
		return errors.New("the record opened under another case's context")
	}
	fmt.Fprintf(out, "hello: the same ciphertext under case 4712's context does not open, as it must not\n")
	return nil
}
