// Package ego is the evidence provider for workloads that run inside Intel SGX enclaves built with
// EGo (github.com/edgelesssys/ego v1.8.0).
//
// Evidence is the enclave's SGX DCAP quote, made by EGo's enclave.GetRemoteReport over the 64
// report-data bytes of the binding. EGo returns it the way Open Enclave's oe_get_report does,
// behind a 16-byte header (version 1, report type 2 "SGX remote", report size; all little
// endian). The header is signed by nothing, so this package checks and strips it: trustd receives
// the raw DCAP quote, the same bytes any other SGX quote provider would send, and verifies it
// with attest/sgx (its layout is attest/sgx/sgxquote).
//
// The EGo runtime is only reachable from a binary built by the EGo toolchain with the build tag
// "ego" (`ego-go build -tags ego`): without the tag this package builds everywhere, and New
// reports enclave.ErrNoTEE. It does not parse or verify quotes beyond a sanity check that the
// quote carries the requested report data; attest/sgx does that on the verifier side.
package ego

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx/sgxquote"
	"github.com/medicus-cloud/trust/enclave"
)

const (
	// ReportHeaderSize is the size of the Open Enclave report header in front of the quote.
	ReportHeaderSize = sgxquote.OEReportHeaderSize
	errPrefix        = "ego: "
	buildHint        = "build the workload with the EGo toolchain and the build tag (ego-go build -tags ego), sign it with ego sign and start it with ego run"
)

// QuoteFromReport checks the Open Enclave report header of a remote report as EGo's
// GetRemoteReport returns it and returns the DCAP quote behind it (see sgxquote.QuoteFromOEReport).
// The quote aliases report.
func QuoteFromReport(report []byte) ([]byte, error) {
	q, err := sgxquote.QuoteFromOEReport(report)
	if err != nil {
		return nil, fmt.Errorf(errPrefix+"remote report: %w", err)
	}
	return q, nil
}

// ReportFunc is the signature of EGo's enclave.GetRemoteReport.
type ReportFunc func(reportData []byte) ([]byte, error)

// Provider obtains SGX quotes from the EGo runtime. It is safe for concurrent use.
type Provider struct {
	report ReportFunc
}

// New returns the provider of the EGo enclave this process runs in. Outside one (or in a binary
// built without the ego tag) the error wraps enclave.ErrNoTEE and says why.
func New() (*Provider, error) {
	f, err := platform()
	if err != nil {
		return nil, err
	}
	return &Provider{report: f}, nil
}

// NewWithReportFunc returns a provider over f, which must behave like EGo's GetRemoteReport. It
// is for tests that stand in for the EGo runtime (f cannot make a quote that attest/sgx accepts
// without a PCK private key that chains to the verifier's root).
func NewWithReportFunc(f ReportFunc) *Provider { return &Provider{report: f} }

// Available reports whether this process runs inside an EGo enclave. Such an enclave may still be
// unable to make quotes (simulation mode, no quote provider library): Evidence then returns an
// error wrapping enclave.ErrNoTEE.
func Available() bool {
	_, err := platform()
	return err == nil
}

// Detect returns the EGo provider when this process runs inside an EGo enclave: what the SDK
// calls, before looking for confidential-VM interfaces, to pick a provider on its own.
func Detect() (enclave.Provider, bool) {
	p, err := New()
	if err != nil {
		return nil, false
	}
	return p, true
}

// platform is detected once per process: an enclave does not come and go.
var platform = sync.OnceValues(detect)

// TEE implements enclave.Provider.
func (p *Provider) TEE() attest.TEE { return attest.SGX }

// Evidence implements enclave.Provider: the raw DCAP quote over reportData. ctx is honoured
// before the request only; the runtime call (a round trip to the quoting enclave) cannot be
// cancelled.
func (p *Provider) Evidence(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p == nil || p.report == nil {
		return nil, fmt.Errorf(errPrefix+"provider not made by New: %w", enclave.ErrNoTEE)
	}
	rep, err := p.report(reportData[:])
	if err != nil {
		return nil, fmt.Errorf(errPrefix+"GetRemoteReport: %w", err)
	}
	q, err := QuoteFromReport(rep)
	if err != nil {
		return nil, err
	}
	// A quote over other data would only be denied by trustd; say so here, where it is a bug.
	parsed, err := sgxquote.ParseQuote(q)
	if err != nil {
		return nil, fmt.Errorf(errPrefix+"the runtime returned a quote that does not parse: %w", err)
	}
	if !bytes.Equal(parsed.Body.ReportData[:], reportData[:]) {
		return nil, errors.New(errPrefix + "the runtime returned a quote over other report data")
	}
	return &attest.Evidence{TEE: attest.SGX, Report: bytes.Clone(q)}, nil
}

// Detector finds an EGo enclave (for enclave/detect).
var Detector = enclave.Detector{
	What: "an EGo enclave",
	Detect: func(enclave.Machine) (enclave.Provider, error) {
		if p, ok := Detect(); ok {
			return p, nil
		}
		return nil, nil
	},
}
