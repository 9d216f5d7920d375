// Package snpguest is the guest side of AMD SEV-SNP: it obtains an attestation report with the
// workload's report data, and the host's certificate table (VCEK, ASK, ARK) when the host
// supplies one, on a real SEV-SNP guest.
//
// It prefers the kernel's configfs-tsm interface (Linux 6.7+, provider "sev_guest", auxblob =
// certificate table) and falls back to the /dev/sev-guest extended-report ioctl. Where neither
// exists it fails with an error wrapping enclave.ErrNoTEE that names both paths. It does not
// import go-sev-guest's client package, which registers command-line flags.
package snpguest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-sev-guest/abi"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/tsm"
)

// DefaultDevice is the legacy SEV guest device.
const DefaultDevice = "/dev/sev-guest"

// Mechanism picks how reports are requested.
type Mechanism int

const (
	// Auto (the zero value) uses configfs-tsm when present, else /dev/sev-guest.
	Auto Mechanism = iota
	// ConfigFSTSM uses only /sys/kernel/config/tsm/report.
	ConfigFSTSM
	// Device uses only the /dev/sev-guest ioctl.
	Device
)

// Options configure a Provider. The zero value picks configfs-tsm or /dev/sev-guest
// automatically and lets the kernel choose the VMPL.
type Options struct {
	Mechanism Mechanism
	// VMPL, if set, is the VMPL the report is requested at (0..3).
	VMPL *uint
	// TSMClient replaces the real configfs (tests inject go-configfs-tsm's faketsm).
	TSMClient configfsi.Client
	// DevicePath replaces /dev/sev-guest.
	DevicePath string
	// device replaces the ioctl device (tests).
	device guestDevice
}

// Provider obtains SEV-SNP evidence. It implements enclave.Provider.
type Provider struct {
	o Options
}

// New returns a Provider. It does not touch the machine: absence of a TEE shows on Evidence.
func New(o Options) (*Provider, error) {
	if o.VMPL != nil && *o.VMPL > 3 {
		return nil, fmt.Errorf("snp: VMPL %d, want 0..3", *o.VMPL)
	}
	if o.Mechanism < Auto || o.Mechanism > Device {
		return nil, fmt.Errorf("snp: unknown mechanism %d", o.Mechanism)
	}
	if o.DevicePath == "" {
		o.DevicePath = DefaultDevice
	}
	return &Provider{o: o}, nil
}

// TEE implements enclave.Provider.
func (p *Provider) TEE() attest.TEE { return attest.SEVSNP }

// Evidence implements enclave.Provider: a report whose REPORT_DATA is rd, and the certificate
// table if the host provides one.
func (p *Provider) Evidence(ctx context.Context, rd [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	useTSM := p.o.Mechanism == ConfigFSTSM || (p.o.Mechanism == Auto && (p.o.TSMClient != nil || tsm.Available() == nil))
	var report, certs []byte
	if useTSM {
		r, err := tsm.Get(ctx, rd[:], tsm.Options{Client: p.o.TSMClient, Privilege: p.o.VMPL, AuxBlob: true, Provider: "sev_guest"})
		if err != nil {
			return nil, fmt.Errorf("snp: %w", err)
		}
		report, certs = r.OutBlob, r.AuxBlob
	} else {
		dev := p.o.device
		if dev == nil {
			if p.o.Mechanism == Auto {
				if _, err := os.Stat(p.o.DevicePath); errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("snp: neither %s nor %s exists (not an SEV-SNP guest, or the sev-guest driver is not loaded): %w", tsm.ReportDir, p.o.DevicePath, enclave.ErrNoTEE)
				}
			}
			d, err := openDevice(p.o.DevicePath)
			if err != nil {
				return nil, err
			}
			defer d.close()
			dev = d
		}
		vmpl := uint32(0)
		if p.o.VMPL != nil {
			vmpl = uint32(*p.o.VMPL)
		}
		var err error
		if report, certs, err = extendedReport(dev, rd, vmpl); err != nil {
			return nil, fmt.Errorf("snp: %s: %w", p.o.DevicePath, err)
		}
	}
	if len(report) < abi.ReportSize {
		return nil, fmt.Errorf("snp: report is %d bytes, want %d", len(report), abi.ReportSize)
	}
	report = report[:abi.ReportSize]
	if !bytes.Equal(report[0x50:0x90], rd[:]) {
		return nil, errors.New("snp: the report's REPORT_DATA is not what was asked for")
	}
	if len(certs) == 0 || allZero(certs) {
		certs = nil
	}
	return &attest.Evidence{TEE: attest.SEVSNP, Report: bytes.Clone(report), Certificates: bytes.Clone(certs)}, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// guestDevice issues SNP_GET_EXT_REPORT. fwErr is the firmware/driver status on failure.
type guestDevice interface {
	extReport(rd [64]byte, vmpl uint32, certs []byte) (report []byte, certsLen uint32, fwErr uint64, err error)
	close() error
}

// invalidLength is the driver's "certificate buffer too small" status (the needed length is
// returned in certsLen).
const invalidLength = uint64(abi.GuestRequestInvalidLength)

// maxCertsLen bounds the certificate buffer the host may ask for.
const maxCertsLen = 1 << 20

// extendedReport asks once with a 4-page buffer and again with the size the host asks for.
func extendedReport(d guestDevice, rd [64]byte, vmpl uint32) ([]byte, []byte, error) {
	certs := make([]byte, 4*4096)
	for attempt := 0; attempt < 2; attempt++ {
		report, n, fwErr, err := d.extReport(rd, vmpl, certs)
		if err == nil {
			if int(n) < len(certs) && n != 0 {
				certs = certs[:n]
			}
			return report, certs, nil
		}
		if fwErr == invalidLength && n > uint32(len(certs)) && n <= maxCertsLen {
			certs = make([]byte, n)
			continue
		}
		if fwErr != 0 {
			return nil, nil, fmt.Errorf("SNP_GET_EXT_REPORT: %v (firmware status %#x)", err, fwErr)
		}
		return nil, nil, fmt.Errorf("SNP_GET_EXT_REPORT: %w", err)
	}
	return nil, nil, errors.New("SNP_GET_EXT_REPORT: host keeps asking for a larger certificate buffer")
}

// Detector finds an SEV-SNP guest by its sev_snp CPU flag or its guest device (for
// enclave/detect).
var Detector = enclave.Detector{
	What: "an SEV-SNP guest (sev_snp CPU flag in /proc/cpuinfo or " + DefaultDevice + ")",
	Detect: func(m enclave.Machine) (enclave.Provider, error) {
		if !m.CPUFlag("sev_snp") && !m.Exists(DefaultDevice) {
			return nil, nil
		}
		return New(Options{})
	},
}
