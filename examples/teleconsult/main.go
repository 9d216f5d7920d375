// Command teleconsult is the imaging example: a teleconsultation service, running in a
// confidential VM, encrypts a large DICOM-like study as it is uploaded and streams it back,
// decrypted, to an authorised viewer, with Range requests served by decrypting only the chunks
// they cover. Keys come from trustd after attestation (here the INSECURE simulated TEE).
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/sdk"
)

// image is the simulated launch measurement pinned in policy.yaml: "medicus trust example
// teleconsult image v1" in hex.
const image = "6d656469637573207472757374206578616d706c652074656c65636f6e73756c7420696d616765207631"

// ViewerTokenSecret is the secret viewers present, granted in policy.yaml.
const ViewerTokenSecret = "teleconsult/viewer-token"

func main() {
	addr := flag.String("addr", "127.0.0.1:7443", "trustd address")
	measurement := flag.String("measurement", image, "simulated launch measurement (hex)")
	sizeMB := flag.Int("size-mb", 64, "size of the generated study in MB")
	dir := flag.String("dir", "", "directory for the encrypted study (default: a temporary one, removed afterwards)")
	flag.Parse()
	if err := run(*addr, *measurement, *sizeMB, *dir, os.Stdout); err != nil {
		var d *sdk.DeniedError
		if errors.As(err, &d) {
			fmt.Fprintf(os.Stderr, "teleconsult: trustd denied this workload: %v\n", d)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "teleconsult:", err)
		os.Exit(1)
	}
}

func run(addr, measurement string, sizeMB int, dir string, out io.Writer) error {
	m, err := hex.DecodeString(measurement)
	if err != nil {
		return fmt.Errorf("--measurement: %w", err)
	}
	if sizeMB < 1 || sizeMB > 64<<10 {
		return errors.New("--size-mb must be 1..65536")
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "teleconsult"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	c, err := sdk.New(ctx, sdk.Options{Addr: addr, Insecure: true, Provider: simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1})})
	if err != nil {
		return err
	}
	defer c.Close()
	token, err := c.Secret(ctx, ViewerTokenSecret)
	if err != nil {
		return err
	}
	defer token.Wipe()
	return Demo(ctx, c.KeySource(), token, dir, int64(sizeMB)<<20, out)
}
