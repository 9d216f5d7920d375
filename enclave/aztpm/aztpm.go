// Package aztpm is the guest side of Azure confidential VMs (SEV-SNP and TDX behind Azure's
// paravisor): it reads the HCL report from the vTPM, optionally refreshes its user data, and
// quotes the PCRs with the vTPM attestation key over the workload's binding.
//
// The evidence it makes is attest/azure's document: the HCL report, the quote (qualifying data
// azureabi.QualifyingData(reportData)) and the PCR values; for TDX also the TD quote, which Azure's
// quoting service makes from the HCL report's TD report (Provider.TDQuote). With an event log
// (Provider.EventLog) the evidence carries it too, as collateral "tpm.eventlog", so that
// policies can name the boot components it records.
package aztpm

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/azure/azureabi"
	"github.com/medicus-cloud/trust/attest/eventlog"
	"github.com/medicus-cloud/trust/enclave"
)

// The vTPM objects Azure's paravisor provides.
const (
	// HCLReportIndex is the NV index holding the HCL report.
	HCLReportIndex tpm2.TPMHandle = 0x01400001
	// UserDataIndex is the NV index whose 64 bytes the paravisor puts into the runtime data
	// ("user-data") of the next HCL report it writes.
	UserDataIndex tpm2.TPMHandle = 0x01400002
	// AKHandle is the persistent handle of the vTPM attestation key (HCLAkPub).
	AKHandle tpm2.TPMHandle = 0x81000003
	// UserDataSize is the size of the user data.
	UserDataSize = 64
)

// DefaultDevice is the kernel's TPM resource manager.
const DefaultDevice = "/dev/tpmrm0"

// DefaultEventLog is where Linux shows the TPM's boot event log (securityfs).
const DefaultEventLog = "/sys/kernel/security/tpm0/binary_bios_measurements"

// maxNVChunk is what every TPM accepts per TPM2_NV_Read.
const maxNVChunk = 512

// Provider produces Azure CVM evidence.
type Provider struct {
	// TPM is the vTPM, e.g. from OpenDevice.
	TPM transport.TPM
	// AK is the attestation key's handle; zero means AKHandle.
	AK tpm2.TPMHandle
	// PCRs are the SHA-256 PCRs to quote. Nil means 0 to 23 or, with an event log, those of 0
	// to 23 that the log accounts for: the PCRs it replays to their present values and the
	// untouched ones at their reset values. PCRs extended after boot outside the log (IMA's
	// PCR 10, for one) are then left out, since the verifier fails evidence whose log does not
	// replay to every quoted PCR.
	PCRs []uint
	// EventLog, if set, returns the vTPM's TCG event log to send along (ReadEventLog reads the
	// kernel's); nil, or a nil log, sends none. The verifier replays it against the quote and
	// draws the components claims from the events of quoted PCRs.
	EventLog func() ([]byte, error)
	// RefreshUserData writes the report data to UserDataIndex before reading the HCL report, so
	// that the runtime data carries it too (Azure refreshes the report on read; elsewhere it
	// has no effect).
	RefreshUserData bool
	// VCEK, if set, fetches the SEV-SNP VCEK to send along (IMDSClient.VCEK); without it the
	// verifier finds it in its collateral or at AMD's KDS.
	VCEK func(ctx context.Context) ([]byte, error)
	// TDQuote turns the TD report of a TDX HCL report into a TD quote (on Azure, the IMDS quote
	// endpoint, IMDSClient.TDQuote). Required for TDX.
	TDQuote func(ctx context.Context, tdReport []byte) ([]byte, error)
}

// TEE implements enclave.Provider: the TEE named by the HCL report.
func (p *Provider) TEE() attest.TEE {
	b, err := ReadNV(p.TPM, HCLReportIndex)
	if err != nil {
		return azureabi.SNP
	}
	r, err := azureabi.ParseHCLReport(b)
	if err == nil && r.ReportType == azureabi.ReportTypeTDX {
		return azureabi.TDX
	}
	return azureabi.SNP
}

// Evidence implements enclave.Provider. The returned Evidence's Report is the attest/azure
// document.
func (p *Provider) Evidence(ctx context.Context, reportData [attest.ReportDataSize]byte) (*attest.Evidence, error) {
	if p.TPM == nil {
		return nil, fmt.Errorf("aztpm: %w: no vTPM", enclave.ErrNoTEE)
	}
	if p.RefreshUserData {
		if err := WriteUserData(p.TPM, reportData); err != nil {
			return nil, err
		}
	}
	hcl, err := ReadNV(p.TPM, HCLReportIndex)
	if err != nil {
		return nil, fmt.Errorf("aztpm: %w: reading the HCL report: %v", enclave.ErrNoTEE, err)
	}
	r, err := azureabi.ParseHCLReport(hcl)
	if err != nil {
		return nil, fmt.Errorf("aztpm: %w", err)
	}
	e := &azureabi.Evidence{TEE: azureabi.SNP, HCLReport: hcl}
	if r.ReportType != azureabi.ReportTypeTDX && p.VCEK != nil {
		if e.VCEK, err = p.VCEK(ctx); err != nil {
			return nil, fmt.Errorf("aztpm: VCEK: %w", err)
		}
	}
	if r.ReportType == azureabi.ReportTypeTDX {
		e.TEE = azureabi.TDX
		if p.TDQuote == nil {
			return nil, errors.New("aztpm: TDX needs Provider.TDQuote to turn the TD report into a quote")
		}
		if e.TDQuote, err = p.TDQuote(ctx, r.HWReport); err != nil {
			return nil, fmt.Errorf("aztpm: TD quote: %w", err)
		}
	}
	ak := p.AK
	if ak == 0 {
		ak = AKHandle
	}
	var log []byte
	if p.EventLog != nil {
		if log, err = p.EventLog(); err != nil {
			return nil, fmt.Errorf("aztpm: event log: %w", err)
		}
	}
	pcrs := p.PCRs
	if pcrs == nil {
		for i := uint(0); i <= azureabi.MaxPCR; i++ {
			pcrs = append(pcrs, i)
		}
		if log != nil {
			if pcrs, err = accountedFor(p.TPM, log, pcrs); err != nil {
				return nil, err
			}
		}
	}
	if e.Quote, err = Quote(p.TPM, ak, azureabi.QualifyingData(reportData), pcrs); err != nil {
		return nil, err
	}
	doc, err := e.Encode()
	if err != nil {
		return nil, err
	}
	ev := &attest.Evidence{TEE: e.TEE, Report: doc}
	if log != nil {
		ev.Collateral = map[string][]byte{azureabi.CollateralTPMEventLog: log}
	}
	return ev, nil
}

// ReadEventLog reads the TPM's boot event log at DefaultEventLog. Where this process cannot see
// it (no securityfs, as in most containers, or a log only root may read) it returns nil and no
// error: the evidence then goes without it, as before there was a log to send, and a policy
// that names boot components denies, saying that no event log was replayed.
func ReadEventLog() ([]byte, error) {
	b, err := os.ReadFile(DefaultEventLog)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return nil, nil
	}
	return b, err
}

// accountedFor returns those of pcrs that the log accounts for at present: each replays to its
// value, or the log does not touch it and it holds its reset value (what the verifier checks).
func accountedFor(tpm transport.TPM, log []byte, pcrs []uint) ([]uint, error) {
	r, err := eventlog.ReplayTPM(log)
	if err != nil {
		return nil, fmt.Errorf("aztpm: the event log does not replay: %w", err)
	}
	now, err := ReadPCRs(tpm, pcrs)
	if err != nil {
		return nil, err
	}
	var out []uint
	for _, i := range pcrs {
		if r.Verify(map[string][]byte{"sha256:" + strconv.Itoa(int(i)): now[uint32(i)]}) == nil {
			out = append(out, i)
		}
	}
	return out, nil
}

// ReadNV reads a whole NV index.
func ReadNV(tpm transport.TPM, index tpm2.TPMHandle) ([]byte, error) {
	pub, err := tpm2.NVReadPublic{NVIndex: index}.Execute(tpm)
	if err != nil {
		return nil, err
	}
	nv, err := pub.NVPublic.Contents()
	if err != nil {
		return nil, err
	}
	auth := tpm2.AuthHandle{Handle: index, Name: pub.NVName, Auth: tpm2.PasswordAuth(nil)}
	var out []byte
	for off := 0; off < int(nv.DataSize); off += maxNVChunk {
		n := min(maxNVChunk, int(nv.DataSize)-off)
		r, err := tpm2.NVRead{AuthHandle: auth, NVIndex: tpm2.NamedHandle{Handle: index, Name: pub.NVName}, Size: uint16(n), Offset: uint16(off)}.Execute(tpm)
		if err != nil {
			return nil, fmt.Errorf("NV_Read %#x at %d: %w", uint32(index), off, err)
		}
		out = append(out, r.Data.Buffer...)
	}
	return out, nil
}

// WriteUserData writes data to UserDataIndex, defining the index (owner authorization, empty
// password) when it does not exist yet.
func WriteUserData(tpm transport.TPM, data [UserDataSize]byte) error {
	pub, err := tpm2.NVReadPublic{NVIndex: UserDataIndex}.Execute(tpm)
	if err != nil {
		if pub, err = DefineNV(tpm, UserDataIndex, UserDataSize); err != nil {
			return fmt.Errorf("aztpm: defining the user data index: %w", err)
		}
	}
	return writeNV(tpm, UserDataIndex, pub.NVName, data[:])
}

// DefineNV defines an owner-authorized NV index of size bytes readable and writable with an
// empty password, and returns its public area.
func DefineNV(tpm transport.TPM, index tpm2.TPMHandle, size uint16) (*tpm2.NVReadPublicResponse, error) {
	_, err := tpm2.NVDefineSpace{
		AuthHandle: tpm2.TPMRHOwner,
		PublicInfo: tpm2.New2B(tpm2.TPMSNVPublic{
			NVIndex: index, NameAlg: tpm2.TPMAlgSHA256,
			Attributes: tpm2.TPMANV{OwnerWrite: true, OwnerRead: true, AuthWrite: true, AuthRead: true, NoDA: true, NT: tpm2.TPMNTOrdinary},
			DataSize:   size,
		}),
	}.Execute(tpm)
	if err != nil {
		return nil, err
	}
	return tpm2.NVReadPublic{NVIndex: index}.Execute(tpm)
}

// WriteNV writes data at the start of an index DefineNV made, in chunks.
func WriteNV(tpm transport.TPM, index tpm2.TPMHandle, data []byte) error {
	pub, err := tpm2.NVReadPublic{NVIndex: index}.Execute(tpm)
	if err != nil {
		return err
	}
	return writeNV(tpm, index, pub.NVName, data)
}

func writeNV(tpm transport.TPM, index tpm2.TPMHandle, name tpm2.TPM2BName, data []byte) error {
	for off := 0; off < len(data); off += maxNVChunk {
		end := min(off+maxNVChunk, len(data))
		_, err := tpm2.NVWrite{
			AuthHandle: tpm2.AuthHandle{Handle: index, Name: name, Auth: tpm2.PasswordAuth(nil)},
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: name},
			Data:       tpm2.TPM2BMaxNVBuffer{Buffer: data[off:end]},
			Offset:     uint16(off),
		}.Execute(tpm)
		if err != nil {
			return fmt.Errorf("aztpm: NV_Write %#x at %d: %w", uint32(index), off, err)
		}
	}
	return nil
}

// Quote quotes the SHA-256 PCRs pcrs with the key at ak over qualifyingData, and reads their
// values.
func Quote(tpm transport.TPM, ak tpm2.TPMHandle, qualifyingData []byte, pcrs []uint) (azureabi.Quote, error) {
	pub, err := tpm2.ReadPublic{ObjectHandle: ak}.Execute(tpm)
	if err != nil {
		return azureabi.Quote{}, fmt.Errorf("aztpm: %w: attestation key %#x: %v", enclave.ErrNoTEE, uint32(ak), err)
	}
	sel := tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(pcrs...)}}}
	q, err := tpm2.Quote{
		SignHandle:     tpm2.AuthHandle{Handle: ak, Name: pub.Name, Auth: tpm2.PasswordAuth(nil)},
		QualifyingData: tpm2.TPM2BData{Buffer: qualifyingData},
		InScheme:       tpm2.TPMTSigScheme{Scheme: tpm2.TPMAlgNull},
		PCRSelect:      sel,
	}.Execute(tpm)
	if err != nil {
		return azureabi.Quote{}, fmt.Errorf("aztpm: TPM2_Quote: %w", err)
	}
	values, err := ReadPCRs(tpm, pcrs)
	if err != nil {
		return azureabi.Quote{}, err
	}
	return azureabi.Quote{Attest: q.Quoted.Bytes(), Signature: tpm2.Marshal(q.Signature), PCRs: values}, nil
}

// ReadPCRs reads SHA-256 PCR values (TPM2_PCR_Read returns at most eight per call).
func ReadPCRs(tpm transport.TPM, pcrs []uint) (map[uint32][]byte, error) {
	out := map[uint32][]byte{}
	for len(out) < len(pcrs) {
		var want []uint
		for _, i := range pcrs {
			if _, ok := out[uint32(i)]; !ok {
				want = append(want, i)
			}
		}
		r, err := tpm2.PCRRead{PCRSelectionIn: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: tpm2.PCClientCompatible.PCRs(want...)}}}}.Execute(tpm)
		if err != nil {
			return nil, fmt.Errorf("aztpm: TPM2_PCR_Read: %w", err)
		}
		got := 0
		for _, s := range r.PCRSelectionOut.PCRSelections {
			for byt := range s.PCRSelect {
				for bit := 0; bit < 8; bit++ {
					if s.PCRSelect[byt]&(1<<bit) != 0 && got < len(r.PCRValues.Digests) {
						out[uint32(byt*8+bit)] = r.PCRValues.Digests[got].Buffer
						got++
					}
				}
			}
		}
		if got == 0 {
			return nil, errors.New("aztpm: TPM2_PCR_Read returned no values")
		}
	}
	return out, nil
}

// AKTemplate is the template of an attestation key like Azure's: RSA-2048, restricted signing,
// RSASSA with SHA-256. Tests make one with it on a TPM simulator.
var AKTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgRSA,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM: true, FixedParent: true, SensitiveDataOrigin: true, UserWithAuth: true,
		Restricted: true, SignEncrypt: true, NoDA: true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgRSA, &tpm2.TPMSRSAParms{
		Scheme: tpm2.TPMTRSAScheme{
			Scheme:  tpm2.TPMAlgRSASSA,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgRSASSA, &tpm2.TPMSSigSchemeRSASSA{HashAlg: tpm2.TPMAlgSHA256}),
		},
		KeyBits: 2048,
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgRSA, &tpm2.TPM2BPublicKeyRSA{Buffer: make([]byte, 256)}),
}
