// Package tsm obtains TEE reports through the Linux configfs-tsm interface
// (/sys/kernel/config/tsm/report), which SEV-SNP ("sev_guest") and TDX ("tdx_guest") guests share
// since Linux 6.7.
//
// It is generic: it writes the input blob (the 64 report-data bytes), reads back the output blob
// (the report or quote), optionally the auxiliary blob (on SNP, the certificate table) and checks
// the entry's generation counter so that a concurrent writer to the same entry cannot swap the
// report under us. It does not parse what it returns; the TEE-specific enclave packages do.
//
// It is not an enclave.Provider by itself: enclave/snpguest and enclave/tdxguest wrap it.
package tsm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/linuxtsm"
	"github.com/google/go-configfs-tsm/report"

	"github.com/medicus-cloud/trust/enclave"
)

// ReportDir is where the kernel exposes the configfs-tsm report subsystem.
var ReportDir = path.Join(configfsi.TsmPrefix, "report")

// Options configure a report request. The zero value uses the real configfs on this machine,
// leaves the privilege level to the kernel's default, fetches no auxiliary blob and accepts any
// provider.
type Options struct {
	// Client is the configfs implementation; nil means the real /sys/kernel/config/tsm. Tests
	// inject github.com/google/go-configfs-tsm/configfs/faketsm.
	Client configfsi.Client
	// Privilege, if set, is written to privlevel (the SNP VMPL the report is requested at).
	Privilege *uint
	// AuxBlob asks for the auxiliary blob too (SNP: the extended report's certificate table).
	AuxBlob bool
	// Provider, if set, is the provider the kernel must report ("sev_guest", "tdx_guest"); any
	// other provider is an error rather than evidence of the wrong kind.
	Provider string
}

// Report is what configfs-tsm returned.
type Report struct {
	// Provider is the kernel's provider name, trimmed ("sev_guest", "tdx_guest").
	Provider string
	// OutBlob is the report or quote.
	OutBlob []byte
	// AuxBlob is the auxiliary blob when requested (may be empty if the host supplied none).
	AuxBlob []byte
}

// MaxInBlob is the largest input blob configfs-tsm accepts.
const MaxInBlob = 64

// Available reports whether the configfs-tsm report subsystem exists. The error wraps
// enclave.ErrNoTEE and names the path looked for when it does not.
func Available() error {
	info, err := os.Stat(ReportDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("configfs-tsm: %s does not exist (kernel without CONFIG_TSM_REPORTS, configfs not mounted at /sys/kernel/config, or not a confidential guest): %w", ReportDir, enclave.ErrNoTEE)
	case err != nil:
		return fmt.Errorf("configfs-tsm: %s: %v: %w", ReportDir, err, enclave.ErrNoTEE)
	case !info.IsDir():
		return fmt.Errorf("configfs-tsm: %s is not a directory: %w", ReportDir, enclave.ErrNoTEE)
	}
	return nil
}

// Get requests one report with inblob as its input (report data). It honours ctx only before the
// request starts: the kernel call itself cannot be cancelled.
func Get(ctx context.Context, inblob []byte, o Options) (*Report, error) {
	if len(inblob) == 0 || len(inblob) > MaxInBlob {
		return nil, fmt.Errorf("configfs-tsm: inblob is %d bytes, want 1..%d", len(inblob), MaxInBlob)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	client := o.Client
	if client == nil {
		if err := Available(); err != nil {
			return nil, err
		}
		c, err := linuxtsm.MakeClient()
		if err != nil {
			return nil, fmt.Errorf("configfs-tsm: %v: %w", err, enclave.ErrNoTEE)
		}
		client = c
	}
	req := &report.Request{InBlob: append([]byte(nil), inblob...), GetAuxBlob: o.AuxBlob}
	if o.Privilege != nil {
		req.Privilege = &report.Privilege{Level: *o.Privilege}
	}
	resp, err := report.Get(client, req)
	if err != nil {
		if g := report.GetGenerationErr(err); g != nil {
			return nil, fmt.Errorf("configfs-tsm: report entry changed while we read it (another writer?): %w", err)
		}
		return nil, fmt.Errorf("configfs-tsm: %w", err)
	}
	r := &Report{Provider: strings.TrimSpace(resp.Provider), OutBlob: resp.OutBlob, AuxBlob: resp.AuxBlob}
	if o.Provider != "" && r.Provider != o.Provider {
		return nil, fmt.Errorf("configfs-tsm: provider is %q, want %q: %w", r.Provider, o.Provider, enclave.ErrNoTEE)
	}
	if len(r.OutBlob) == 0 {
		return nil, fmt.Errorf("configfs-tsm: empty outblob from provider %q", r.Provider)
	}
	return r, nil
}
