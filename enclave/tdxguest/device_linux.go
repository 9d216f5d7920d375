//go:build linux

package tdxguest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	labi "github.com/google/go-tdx-guest/client/linuxabi"
	"golang.org/x/sys/unix"
)

type linuxDevice struct{ f *os.File }

func openDevice(path string) (device, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &linuxDevice{f: f}, nil
}

func (d *linuxDevice) ioctl(cmd uintptr, arg unsafe.Pointer) error {
	conn, err := d.f.SyscallConn()
	if err != nil {
		return err
	}
	var errno unix.Errno
	if err := conn.Control(func(fd uintptr) {
		_, _, errno = unix.Syscall(unix.SYS_IOCTL, fd, cmd, uintptr(arg))
	}); err != nil {
		return err
	}
	switch {
	case errno == 0:
		return nil
	case errors.Is(errno, unix.ENOTTY):
		return fmt.Errorf("the kernel does not support this request (newer kernels offer quotes only through configfs-tsm): %w", errno)
	}
	return errno
}

func (d *linuxDevice) report(rd [64]byte) ([labi.TdReportSize]byte, error) {
	req := &labi.TdxReportReq{ReportData: rd}
	err := d.ioctl(labi.IocTdxGetReport, unsafe.Pointer(req))
	return req.TdReport, err
}

func (d *linuxDevice) quote(hdr *labi.TdxQuoteHdr) error {
	req := &labi.TdxQuoteReqABI{Buffer: unsafe.Pointer(hdr), Length: labi.ReqBufSize}
	err := d.ioctl(labi.IocTdxGetQuote, unsafe.Pointer(req))
	runtime.KeepAlive(hdr)
	return err
}

func (d *linuxDevice) close() error { return d.f.Close() }
