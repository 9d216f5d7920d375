// Package simguest is the evidence provider of the simulated TEE.
//
// INSECURE: for development and tests only. The evidence it makes is signed with a published key
// and is accepted only by a trustd running with --dev.
package simguest

import (
	"context"
	"crypto/ed25519"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sim"
)

// Options describe the simulated workload.
type Options struct {
	// Measurement is the simulated launch measurement (48 bytes; shorter is zero-padded).
	Measurement []byte
	HostData    []byte
	SVN         uint32
	Debug       bool
	Migration   bool
	SMT         bool
	// Key signs the reports; nil means the published insecure simulator key.
	Key ed25519.PrivateKey
}

// InsecureProvider produces simulated evidence.
type InsecureProvider struct {
	o Options
}

// NewInsecure returns a simulated provider.
func NewInsecure(o Options) *InsecureProvider {
	if o.Key == nil {
		o.Key = sim.InsecureKey()
	}
	return &InsecureProvider{o: o}
}

// TEE implements enclave.Provider.
func (p *InsecureProvider) TEE() attest.TEE { return attest.InsecureSimulated }

// Evidence implements enclave.Provider.
func (p *InsecureProvider) Evidence(_ context.Context, rd [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	r := &sim.Report{SVN: p.o.SVN, ReportData: rd}
	copy(r.Measurement[:], p.o.Measurement)
	copy(r.HostData[:], p.o.HostData)
	if p.o.Debug {
		r.Flags |= sim.FlagDebug
	}
	if p.o.Migration {
		r.Flags |= sim.FlagMigration
	}
	if p.o.SMT {
		r.Flags |= sim.FlagSMT
	}
	return &attest.Evidence{TEE: attest.InsecureSimulated, Report: r.Sign(p.o.Key)}, nil
}
