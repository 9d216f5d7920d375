package snpguest

import (
	"errors"
	"fmt"
	"io/fs"

	labi "github.com/google/go-sev-guest/client/linuxabi"
	"golang.org/x/sys/unix"

	"github.com/medicus-cloud/trust/enclave"
)

type linuxDevice struct{ fd int }

func openDevice(path string) (*linuxDevice, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("snp: %s does not exist: %w", path, enclave.ErrNoTEE)
		}
		return nil, fmt.Errorf("snp: open %s: %w", path, err)
	}
	return &linuxDevice{fd: fd}, nil
}

func (d *linuxDevice) close() error { return unix.Close(d.fd) }

func (d *linuxDevice) extReport(rd [64]byte, vmpl uint32, certs []byte) ([]byte, uint32, uint64, error) {
	var resp labi.SnpReportRespABI
	req := labi.SnpExtendedReportReq{
		Data:        labi.SnpReportReqABI{ReportData: rd, Vmpl: vmpl},
		Certs:       certs,
		CertsLength: uint32(len(certs)),
	}
	guest := labi.SnpUserGuestRequest{ReqData: &req, RespData: &resp}
	conv := guest.ABI()
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(d.fd), uintptr(labi.IocSnpGetExtendedReport), uintptr(conv.Pointer()))
	if err := conv.Finish(&guest); err != nil {
		return nil, 0, 0, err
	}
	if errno != 0 {
		fw := uint64(0)
		if errno == unix.EIO {
			fw = guest.FwErr
		}
		return nil, req.CertsLength, fw, errno
	}
	if resp.Status != 0 {
		return nil, 0, uint64(resp.Status), fmt.Errorf("firmware status %#x", resp.Status)
	}
	if resp.ReportSize < 0x4A0 || int(resp.ReportSize) > len(resp.Data) {
		return nil, 0, 0, fmt.Errorf("report size %d", resp.ReportSize)
	}
	return append([]byte(nil), resp.Data[:resp.ReportSize]...), req.CertsLength, 0, nil
}
