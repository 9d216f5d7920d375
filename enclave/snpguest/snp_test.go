package snpguest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/tsm"
)

const reportSize = 0x4A0

// fakeReport is a report-shaped blob carrying rd at REPORT_DATA (unsigned: the provider does
// not verify, the verifier does).
func fakeReport(rd []byte) []byte {
	r := make([]byte, reportSize)
	r[0] = 3
	copy(r[0x50:0x90], rd)
	return r
}

// fakeTSM is a configfs-tsm report subsystem whose provider answers like the kernel's sev_guest.
func fakeTSM(provider string, aux []byte, mangle bool) configfsi.Client {
	sub := faketsm.ReportV7(0)
	sub.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(provider + "\n"), nil
		case "auxblob":
			return aux, nil
		case "outblob":
			in := e.InAttrs["inblob"].Value
			if len(in) == 0 {
				return nil, syscall.EINVAL
			}
			r := fakeReport(in)
			if mangle {
				r[0x50] ^= 1
			}
			return r, nil
		case "privlevel_floor":
			return []byte("0\n"), nil
		}
		return nil, os.ErrNotExist
	}
	sub.Random = rand.Reader
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": sub}}
}

func TestEvidenceConfigFS(t *testing.T) {
	var rd [64]byte
	copy(rd[:], "bound to a key")
	table := []byte("certificate table bytes")
	tests := []struct {
		name      string
		client    configfsi.Client
		wantErr   string
		wantNoTEE bool
		wantCerts []byte
	}{
		{name: "report and certificate table", client: fakeTSM("sev_guest", table, false), wantCerts: table},
		{name: "no certificates from the host", client: fakeTSM("sev_guest", nil, false)},
		{name: "tdx machine", client: fakeTSM("tdx_guest", nil, false), wantErr: `provider is "tdx_guest"`, wantNoTEE: true},
		{name: "report data not ours", client: fakeTSM("sev_guest", nil, true), wantErr: "REPORT_DATA"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Options{TSMClient: tc.client})
			if err != nil {
				t.Fatal(err)
			}
			ev, err := p.Evidence(context.Background(), rd)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, enclave.ErrNoTEE) != tc.wantNoTEE {
					t.Fatalf("err %v, want %q (ErrNoTEE %v)", err, tc.wantErr, tc.wantNoTEE)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.TEE != attest.SEVSNP || len(ev.Report) != reportSize || !bytes.Equal(ev.Report[0x50:0x90], rd[:]) || !bytes.Equal(ev.Certificates, tc.wantCerts) {
				t.Fatalf("evidence %+v", ev)
			}
		})
	}
}

// fakeDevice answers SNP_GET_EXT_REPORT, first asking for a bigger certificate buffer.
type fakeDevice struct {
	certs []byte
	calls int
	fail  error
}

func (d *fakeDevice) extReport(rd [64]byte, vmpl uint32, certs []byte) ([]byte, uint32, uint64, error) {
	d.calls++
	if d.fail != nil {
		return nil, 0, 0, d.fail
	}
	if len(certs) < len(d.certs) {
		return nil, uint32(len(d.certs)), invalidLength, syscall.EIO
	}
	copy(certs, d.certs)
	return fakeReport(rd[:]), uint32(len(d.certs)), 0, nil
}

func (d *fakeDevice) close() error { return nil }

func TestEvidenceDevice(t *testing.T) {
	var rd [64]byte
	copy(rd[:], "device")
	big := bytes.Repeat([]byte{7}, 5*4096)
	d := &fakeDevice{certs: big}
	p, err := New(Options{Mechanism: Device, device: d})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := p.Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if d.calls != 2 || !bytes.Equal(ev.Certificates, big) || !bytes.Equal(ev.Report[0x50:0x90], rd[:]) {
		t.Fatalf("calls %d, %d certificate bytes", d.calls, len(ev.Certificates))
	}
	p, _ = New(Options{Mechanism: Device, device: &fakeDevice{fail: syscall.EPERM}})
	if _, err := p.Evidence(context.Background(), rd); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("err %v", err)
	}
}

func TestNoTEE(t *testing.T) {
	if tsm.Available() == nil {
		t.Skip("this machine has configfs-tsm")
	}
	if _, err := os.Stat(DefaultDevice); err == nil {
		t.Skip("this machine has " + DefaultDevice)
	}
	p, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Evidence(context.Background(), [64]byte{})
	if !errors.Is(err, enclave.ErrNoTEE) || !strings.Contains(err.Error(), tsm.ReportDir) || !strings.Contains(err.Error(), DefaultDevice) {
		t.Fatalf("err %v: want ErrNoTEE naming both interfaces", err)
	}
	p, _ = New(Options{Mechanism: Device, DevicePath: "/nonexistent/sev-guest"})
	if _, err := p.Evidence(context.Background(), [64]byte{}); !errors.Is(err, enclave.ErrNoTEE) || !strings.Contains(err.Error(), "/nonexistent/sev-guest") {
		t.Fatalf("err %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	four := uint(4)
	if _, err := New(Options{VMPL: &four}); err == nil {
		t.Error("VMPL 4 accepted")
	}
	if _, err := New(Options{Mechanism: 7}); err == nil {
		t.Error("unknown mechanism accepted")
	}
}

var _ enclave.Provider = (*Provider)(nil)
