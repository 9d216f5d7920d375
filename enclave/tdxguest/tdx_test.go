package tdxguest

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"
	labi "github.com/google/go-tdx-guest/client/linuxabi"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx"
	"github.com/medicus-cloud/trust/attest/tdx/tdxtest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/tsm"
)

var fixture = sync.OnceValues(tdxtest.NewFixture)

func fx(t *testing.T) *tdxtest.Fixture {
	t.Helper()
	f, err := fixture()
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// quoteFor signs a test quote over rd, or over other report data when lie is set.
func quoteFor(t *testing.T, rd []byte, lie bool) []byte {
	f := fx(t)
	s := f.DefaultSpec()
	copy(s.Body.ReportData[:], rd)
	if lie {
		s.Body.ReportData[0] ^= 1
	}
	return f.Quote(s)
}

// fakeConfigFS is go-configfs-tsm's fake report subsystem answering as a TDX guest would.
func fakeConfigFS(t *testing.T, provider string, lie bool) configfsi.Client {
	rs := faketsm.Report611(0)
	read := rs.ReadAttr
	rs.ReadAttr = func(e *faketsm.ReportEntry, attr string) ([]byte, error) {
		switch attr {
		case "provider":
			return []byte(provider + "\n"), nil
		case "outblob":
			return quoteFor(t, e.InAttrs["inblob"].Value, lie), nil
		}
		return read(e, attr)
	}
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": rs}}
}

type fakeDevice struct {
	t      *testing.T
	status uint64
	rd     [64]byte
}

func (d *fakeDevice) report(rd [64]byte) ([labi.TdReportSize]byte, error) {
	d.rd = rd
	var r [labi.TdReportSize]byte
	copy(r[:], "TDREPORT")
	return r, nil
}

func (d *fakeDevice) quote(hdr *labi.TdxQuoteHdr) error {
	if hdr.Version != 1 || hdr.InLen != labi.TdReportSize || string(hdr.Data[:8]) != "TDREPORT" {
		d.t.Errorf("GET_QUOTE request %d %d %q", hdr.Version, hdr.InLen, hdr.Data[:8])
	}
	hdr.Status = d.status
	q := quoteFor(d.t, d.rd[:], false)
	hdr.OutLen = uint32(copy(hdr.Data[:], q))
	return nil
}

func (d *fakeDevice) close() error { return nil }

func TestEvidence(t *testing.T) {
	f := fx(t)
	v, err := tdx.New(tdx.Options{Root: f.PKI.Root})
	if err != nil {
		t.Fatal(err)
	}
	var rd [64]byte
	copy(rd[:], "medicus report data")
	dev := func(status uint64) func(string) (device, error) {
		return func(string) (device, error) { return &fakeDevice{t: t, status: status}, nil }
	}
	missing := filepath.Join(t.TempDir(), "tdx_guest")
	tests := []struct {
		name    string
		o       Options
		noTEE   bool
		wantErr string
	}{
		{name: "configfs", o: Options{ConfigFS: fakeConfigFS(t, "tdx_guest", false)}},
		{name: "configfs forced", o: Options{Mechanism: ConfigFS, ConfigFS: fakeConfigFS(t, "tdx_guest", false)}},
		{name: "configfs of an SNP guest", o: Options{ConfigFS: fakeConfigFS(t, "sev_guest", false)}, noTEE: true, wantErr: `provider is "sev_guest"`},
		{name: "quote over other report data", o: Options{ConfigFS: fakeConfigFS(t, "tdx_guest", true)}, wantErr: "REPORTDATA is not the report data"},
		{name: "device", o: Options{Mechanism: Device, openDevice: dev(labi.GetQuoteSuccess)}},
		{name: "device busy", o: Options{Mechanism: Device, openDevice: dev(labi.GetQuoteInFlight)}, wantErr: "still producing"},
		{name: "device without QGS", o: Options{Mechanism: Device, openDevice: dev(labi.GetQuoteServiceUnavailable)}, wantErr: "no quote generation service"},
		{name: "no device", o: Options{Mechanism: Device, DevicePath: missing}, noTEE: true, wantErr: missing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			e, err := p.Evidence(context.Background(), rd)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || errors.Is(err, enclave.ErrNoTEE) != tc.noTEE {
					t.Fatalf("err = %v; want %q (ErrNoTEE %v)", err, tc.wantErr, tc.noTEE)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(context.Background(), e, attest.Options{Now: f.Now})
			if err != nil {
				t.Fatal(err)
			}
			if string(c.ReportData) != string(rd[:]) || p.TEE() != attest.TDX {
				t.Errorf("report data %x", c.ReportData)
			}
		})
	}
}

func TestNoTEE(t *testing.T) {
	if tsm.Available() == nil {
		t.Skip("this machine has configfs-tsm")
	}
	missing := filepath.Join(t.TempDir(), "tdx_guest")
	p, err := New(Options{DevicePath: missing})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Evidence(context.Background(), [64]byte{})
	if !errors.Is(err, enclave.ErrNoTEE) || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), tsm.ReportDir) {
		t.Fatalf("err = %v", err)
	}
	if _, err := New(Options{Mechanism: 7}); err == nil {
		t.Error("unknown mechanism accepted")
	}
}
