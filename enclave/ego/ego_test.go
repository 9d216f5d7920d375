package ego

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/sgx"
	"github.com/medicus-cloud/trust/attest/sgx/sgxtest"
	"github.com/medicus-cloud/trust/enclave"
	"github.com/medicus-cloud/trust/seal"
)

// oeReport wraps a quote the way EGo's GetRemoteReport returns it.
func oeReport(version, typ uint32, size uint64, quote []byte) []byte {
	h := make([]byte, ReportHeaderSize)
	binary.LittleEndian.PutUint32(h[0:], version)
	binary.LittleEndian.PutUint32(h[4:], typ)
	binary.LittleEndian.PutUint64(h[8:], size)
	return append(h, quote...)
}

func wrap(q []byte) []byte { return oeReport(1, 2, uint64(len(q)), q) }

func TestQuoteFromReport(t *testing.T) {
	q := []byte("a quote")
	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"good", wrap(q), ""},
		{"empty", nil, "shorter than its 16-byte header"},
		{"short header", wrap(q)[:15], "shorter than its 16-byte header"},
		{"version 2", oeReport(2, 2, uint64(len(q)), q), "header version 2"},
		{"raw quote without header", append([]byte{3, 0, 2, 0}, make([]byte, 60)...), "header version 131075"},
		{"local report", oeReport(1, 1, uint64(len(q)), q), "local report"},
		{"unknown type", oeReport(1, 9, uint64(len(q)), q), "report type 9"},
		{"size too large", oeReport(1, 2, uint64(len(q))+1, q), "says 8 quote bytes, 7 follow"},
		{"size too small", oeReport(1, 2, uint64(len(q))-1, q), "says 6 quote bytes, 7 follow"},
		{"size huge", oeReport(1, 2, 1<<63, q), "quote bytes"},
		{"empty quote", oeReport(1, 2, 0, nil), "empty quote"},
		{"oversized", wrap(make([]byte, sgx.MaxQuoteSize+1)), "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := QuoteFromReport(tt.in)
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(got, q) {
					t.Fatalf("got %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
}

// fakeRuntime stands in for EGo's GetRemoteReport on a fake SGX platform.
func fakeRuntime(t *testing.T, p *sgxtest.Platform, e sgxtest.Enclave) ReportFunc {
	return func(rd []byte) ([]byte, error) {
		if len(rd) > 64 {
			return nil, errors.New("reportData too large")
		}
		var d [64]byte
		copy(d[:], rd)
		return wrap(p.Quote(t, e, d, sgxtest.QuoteOptions{Version: 3, AuthData: []byte("auth")})), nil
	}
}

func TestProviderEndToEnd(t *testing.T) {
	p := sgxtest.NewPlatform(t)
	prov := NewWithReportFunc(fakeRuntime(t, p, sgxtest.DefaultEnclave()))
	var _ enclave.Provider = prov
	if prov.TEE() != attest.SGX {
		t.Fatalf("TEE %s", prov.TEE())
	}
	key, err := enclave.NewKey(seal.X25519)
	if err != nil {
		t.Fatal(err)
	}
	rd := key.ReportData([]byte("nonce from trustd"))
	ev, err := prov.Evidence(context.Background(), rd)
	if err != nil {
		t.Fatal(err)
	}
	if ev.TEE != attest.SGX || binary.LittleEndian.Uint16(ev.Report) != 3 {
		t.Fatalf("evidence is not a raw v3 quote: tee %s, first bytes %x", ev.TEE, ev.Report[:4])
	}
	v, err := sgx.New(sgx.Options{Root: p.Root})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), ev, attest.Options{Now: sgxtest.Now})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c.ReportData, rd[:]) {
		t.Fatalf("claims report data %x, want %x", c.ReportData, rd)
	}
}

func TestProviderErrors(t *testing.T) {
	p := sgxtest.NewPlatform(t)
	var rd [64]byte
	rd[0] = 1
	runtimeErr := errors.New("OE_QUOTE_PROVIDER_CALL_ERROR")
	tests := []struct {
		name    string
		f       ReportFunc
		wantErr string
	}{
		{"runtime error", func([]byte) ([]byte, error) { return nil, runtimeErr }, "GetRemoteReport: OE_QUOTE_PROVIDER_CALL_ERROR"},
		{"no header", func([]byte) ([]byte, error) {
			return p.Quote(t, sgxtest.DefaultEnclave(), rd, sgxtest.QuoteOptions{}), nil
		}, "header version"},
		{"other report data", func([]byte) ([]byte, error) {
			return wrap(p.Quote(t, sgxtest.DefaultEnclave(), [64]byte{2}, sgxtest.QuoteOptions{})), nil
		}, "other report data"},
		{"not a quote", func([]byte) ([]byte, error) { return wrap([]byte("garbage")), nil }, "does not parse"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewWithReportFunc(tt.f).Evidence(context.Background(), rd)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	_, err := NewWithReportFunc(func([]byte) ([]byte, error) { called = true; return nil, nil }).Evidence(ctx, rd)
	if !errors.Is(err, context.Canceled) || called {
		t.Fatalf("cancelled context: %v, runtime called %v", err, called)
	}
}

// Tests run without the EGo toolchain: the provider must say there is no TEE, and why.
func TestNotInEnclave(t *testing.T) {
	_, err := New()
	if !errors.Is(err, enclave.ErrNoTEE) || !strings.Contains(err.Error(), "ego-go build -tags ego") {
		t.Fatalf("New outside an enclave: %v", err)
	}
	if _, err := new(Provider).Evidence(context.Background(), [64]byte{}); !errors.Is(err, enclave.ErrNoTEE) {
		t.Fatalf("zero Provider: %v", err)
	}
	if Available() {
		t.Fatal("Available outside an enclave")
	}
	if p, ok := Detect(); ok || p != nil {
		t.Fatal("Detect outside an enclave")
	}
}

func FuzzQuoteFromReport(f *testing.F) {
	f.Add(wrap([]byte("q")))
	f.Add(oeReport(1, 1, 1, []byte("q")))
	if real, err := os.ReadFile("../../attest/sgx/testdata/tdx_prod_quote_SPR_E4.dat"); err == nil {
		f.Add(wrap(real))
	}
	if fx, err := os.ReadFile("../../attest/sgx/testdata/quote_v3.bin"); err == nil {
		f.Add(wrap(fx))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := QuoteFromReport(b)
		if err != nil {
			return
		}
		if len(q) != len(b)-ReportHeaderSize || len(q) == 0 {
			t.Fatalf("quote of %d bytes from a %d-byte report", len(q), len(b))
		}
	})
}
