// Command messenger-attachments is the messenger example: a Matrix-style clinical messenger,
// running in a confidential VM, encrypts attachments before they reach the media repository and
// binds each to the tenant and room it was sent in, so a forwarded event's attachment does not
// open elsewhere. Keys come from trustd after attestation (here the INSECURE simulated TEE).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/sdk/envelope"
)

// image is the simulated launch measurement pinned in policy.yaml: "medicus trust example
// messenger image v1" in hex.
const image = "6d656469637573207472757374206578616d706c65206d657373656e67657220696d616765207631"

func main() {
	addr := flag.String("addr", "127.0.0.1:7443", "trustd address")
	measurement := flag.String("measurement", image, "simulated launch measurement (hex)")
	tenant := flag.String("tenant", "klinikum-nord", "tenant of the room")
	room := flag.String("room", "!ward3-handover:medicus.local", "room the attachment is sent in")
	file := flag.String("file", "", "file to send (default: a generated 3 MB scan)")
	flag.Parse()
	if err := run(*addr, *measurement, *tenant, *room, *file, os.Stdout); err != nil {
		var d *sdk.DeniedError
		if errors.As(err, &d) {
			fmt.Fprintf(os.Stderr, "messenger-attachments: trustd denied this workload: %v\n", d)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "messenger-attachments:", err)
		os.Exit(1)
	}
}

func run(addr, measurement, tenant, room, file string, out io.Writer) error {
	m, err := hex.DecodeString(measurement)
	if err != nil {
		return fmt.Errorf("--measurement: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := sdk.New(ctx, sdk.Options{Addr: addr, Insecure: true, Provider: simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1})})
	if err != nil {
		return err
	}
	defer c.Close()
	return Demo(ctx, c, tenant, room, file, out)
}

// Demo sends one attachment in room, receives it as a member of that room would, and shows
// that the same event forwarded into another room does not open.
func Demo(ctx context.Context, ks envelope.KeySource, tenant, room, file string, out io.Writer) error {
	dir, err := os.MkdirTemp("", "messenger")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	media := filepath.Join(dir, "media")
	if err := os.Mkdir(media, 0o700); err != nil {
		return err
	}
	store := &DirStore{Dir: media, Server: "medicus.local"}

	name, mimetype := "scan.pdf", "application/pdf"
	var data []byte
	if file != "" {
		if data, err = os.ReadFile(file); err != nil {
			return err
		}
		name = filepath.Base(file)
		mimetype = "application/octet-stream"
	} else {
		data = make([]byte, 3<<20)
		rand.NewChaCha8([32]byte{'m', 's', 'g'}).Read(data)
		copy(data, "%PDF-1.7\n% synthetic scan, no patient data\n")
	}

	ev, err := Send(ctx, ks, store, tenant, room, name, mimetype, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("send: %w", err)
	}
	js, _ := json.MarshalIndent(ev, "  ", "  ")
	fmt.Fprintf(out, "messenger: sent %q (%d bytes) to %s; the media repository holds only the envelope. Event content:\n  %s\n", name, len(data), room, js)

	// A member of the room receives the event as JSON from the homeserver.
	got, err := ParseEvent(js)
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "received-"+got.Body)
	if err := Save(ctx, ks, store, tenant, room, got, path); err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	back, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if sha256.Sum256(back) != sha256.Sum256(data) {
		return errors.New("received attachment differs from the one sent")
	}
	fmt.Fprintf(out, "messenger: a member of %s received and decrypted it: %d bytes, identical\n", room, len(back))

	// Someone forwards the event into another room of the same tenant.
	other := "!cafeteria:medicus.local"
	err = Save(ctx, ks, store, tenant, other, got, filepath.Join(dir, "forwarded"))
	if !errors.Is(err, envelope.ErrWrongContext) {
		return fmt.Errorf("forwarded attachment: want a refusal, got %v", err)
	}
	fmt.Fprintf(out, "messenger: the same event forwarded to %s does not open there: %v\n", other, err)
	return nil
}
