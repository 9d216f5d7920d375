// Package tdxguest is the evidence provider for Intel TDX trust domains: it asks the guest kernel
// for a quote over the report data, through configfs-tsm (provider "tdx_guest", the kernel's
// current interface) or, on older kernels, the /dev/tdx_guest device's GET_QUOTE request.
//
// The quote goes from the TD to the host's quoting enclave and back; it is not secret. The
// provider checks that what came back is a TDX quote over the report data it asked for.
package tdxguest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	labi "github.com/google/go-tdx-guest/client/linuxabi"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/tdx/tdxquote"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/enclave/tsm"
)

// DefaultDevicePath is the TDX guest device of Linux.
const DefaultDevicePath = "/dev/tdx_guest"

// TSMProvider is the configfs-tsm provider name of TDX guests.
const TSMProvider = "tdx_guest"

// Mechanism chooses how quotes are obtained.
type Mechanism int

// Mechanisms; Auto prefers configfs-tsm and falls back to the device.
const (
	Auto Mechanism = iota
	ConfigFS
	Device
)

// Options configure a Provider. The zero value finds the kernel's interface by itself.
type Options struct {
	Mechanism Mechanism
	// ConfigFS replaces the kernel's configfs (tests use go-configfs-tsm's faketsm).
	ConfigFS configfsi.Client
	// DevicePath is the guest device; empty means DefaultDevicePath.
	DevicePath string
	// ACPITables is where the CCEL table and log are read from (eventlog.go); empty means
	// DefaultACPITables.
	ACPITables string

	openDevice func(path string) (device, error) // tests
}

// device is the legacy ioctl interface of /dev/tdx_guest.
type device interface {
	// report asks the TDX module for a TDREPORT over rd (TDX_CMD_GET_REPORT0).
	report(rd [64]byte) ([labi.TdReportSize]byte, error)
	// quote has the host's quoting enclave turn the TDREPORT in hdr into a quote
	// (TDX_CMD_GET_QUOTE).
	quote(hdr *labi.TdxQuoteHdr) error
	close() error
}

// Provider obtains TDX quotes.
type Provider struct {
	o Options
}

// New returns a Provider. It does not touch the system until Evidence is called.
func New(o Options) (*Provider, error) {
	if o.Mechanism < Auto || o.Mechanism > Device {
		return nil, fmt.Errorf("tdx: unknown mechanism %d", o.Mechanism)
	}
	if o.DevicePath == "" {
		o.DevicePath = DefaultDevicePath
	}
	if o.openDevice == nil {
		o.openDevice = openDevice
	}
	return &Provider{o: o}, nil
}

// TEE implements enclave.Provider.
func (p *Provider) TEE() attest.TEE { return attest.TDX }

// Evidence implements enclave.Provider: a quote whose REPORTDATA is rd.
func (p *Provider) Evidence(ctx context.Context, rd [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var (
		q   []byte
		err error
	)
	switch p.o.Mechanism {
	case ConfigFS:
		q, err = p.viaConfigFS(ctx, rd)
	case Device:
		q, err = p.viaDevice(rd)
	default:
		if p.o.ConfigFS != nil || tsm.Available() == nil {
			q, err = p.viaConfigFS(ctx, rd)
		} else {
			q, err = p.viaDevice(rd)
			if errors.Is(err, enclave.ErrNoTEE) {
				err = fmt.Errorf("tdx: neither configfs-tsm (%s) nor %s is present: %w", tsm.ReportDir, p.o.DevicePath, enclave.ErrNoTEE)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	// Fail here rather than at the verifier if the platform handed back something else.
	pq, err := tdxquote.ParseQuote(q)
	if err != nil {
		return nil, fmt.Errorf("tdx: the platform returned no usable quote: %w", err)
	}
	if pq.Body.ReportData != rd {
		return nil, errors.New("tdx: the quote's REPORTDATA is not the report data asked for")
	}
	coll, err := p.eventLog() // eventlog.go
	if err != nil {
		return nil, err
	}
	return &attest.Evidence{TEE: attest.TDX, Report: q, Collateral: coll}, nil
}

func (p *Provider) viaConfigFS(ctx context.Context, rd [64]byte) ([]byte, error) {
	r, err := tsm.Get(ctx, rd[:], tsm.Options{Client: p.o.ConfigFS, Provider: TSMProvider})
	if err != nil {
		return nil, fmt.Errorf("tdx: %w", err)
	}
	return r.OutBlob, nil
}

func (p *Provider) viaDevice(rd [64]byte) ([]byte, error) {
	d, err := p.o.openDevice(p.o.DevicePath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, enclave.ErrNoTEE) {
			return nil, fmt.Errorf("tdx: %s: %v: %w", p.o.DevicePath, err, enclave.ErrNoTEE)
		}
		return nil, fmt.Errorf("tdx: open %s: %w", p.o.DevicePath, err)
	}
	defer d.close()
	report, err := d.report(rd)
	if err != nil {
		return nil, fmt.Errorf("tdx: %s: TDREPORT: %w", p.o.DevicePath, err)
	}
	hdr := &labi.TdxQuoteHdr{Version: 1, InLen: labi.TdReportSize}
	copy(hdr.Data[:], report[:])
	if err := d.quote(hdr); err != nil {
		return nil, fmt.Errorf("tdx: %s: GET_QUOTE: %w", p.o.DevicePath, err)
	}
	switch {
	case hdr.Status == labi.GetQuoteInFlight:
		return nil, fmt.Errorf("tdx: %s: the host is still producing the quote", p.o.DevicePath)
	case hdr.Status == labi.GetQuoteServiceUnavailable:
		return nil, fmt.Errorf("tdx: %s: the host has no quote generation service", p.o.DevicePath)
	case hdr.Status != labi.GetQuoteSuccess:
		return nil, fmt.Errorf("tdx: %s: quote generation failed with status %#x", p.o.DevicePath, hdr.Status)
	case hdr.OutLen == 0 || hdr.OutLen > labi.ReqBufSize:
		return nil, fmt.Errorf("tdx: %s: quote length %d out of range", p.o.DevicePath, hdr.OutLen)
	}
	return append([]byte(nil), hdr.Data[:hdr.OutLen]...), nil
}

// Detector finds a TDX guest by its tdx_guest CPU flag or its guest device (for enclave/detect).
var Detector = enclave.Detector{
	What: "a TDX guest (tdx_guest CPU flag in /proc/cpuinfo or " + DefaultDevicePath + ")",
	Detect: func(m enclave.Machine) (enclave.Provider, error) {
		if !m.CPUFlag("tdx_guest") && !m.Exists(DefaultDevicePath) {
			return nil, nil
		}
		return New(Options{})
	},
}
