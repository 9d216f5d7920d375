package tsm

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-configfs-tsm/configfs/configfsi"
	"github.com/google/go-configfs-tsm/configfs/faketsm"

	"github.com/medicus-cloud/trust/enclave"
)

func fake() configfsi.Client {
	return &faketsm.Client{Subsystems: map[string]configfsi.Client{"report": faketsm.Report611(0)}}
}

func TestGet(t *testing.T) {
	one := uint(1)
	tests := []struct {
		name    string
		inblob  []byte
		opts    Options
		wantErr string
		check   func(t *testing.T, r *Report)
	}{
		{name: "report data round trip", inblob: bytes.Repeat([]byte{0xab}, 64), opts: Options{Client: fake()},
			check: func(t *testing.T, r *Report) {
				if r.Provider != "fake" {
					t.Errorf("provider %q", r.Provider)
				}
				if !strings.Contains(string(r.OutBlob), strings.Repeat("ab", 64)) {
					t.Errorf("outblob %q does not carry the inblob", r.OutBlob)
				}
				if r.AuxBlob != nil {
					t.Errorf("auxblob %q not asked for", r.AuxBlob)
				}
			}},
		{name: "aux blob and privilege", inblob: []byte{1}, opts: Options{Client: fake(), AuxBlob: true, Privilege: &one},
			check: func(t *testing.T, r *Report) {
				if string(r.AuxBlob) != "auxblob" {
					t.Errorf("auxblob %q", r.AuxBlob)
				}
				if !strings.Contains(string(r.OutBlob), "privlevel: 1") {
					t.Errorf("outblob %q lacks privlevel", r.OutBlob)
				}
			}},
		{name: "wrong provider", inblob: []byte{1}, opts: Options{Client: fake(), Provider: "sev_guest"}, wantErr: `provider is "fake", want "sev_guest"`},
		{name: "empty inblob", inblob: nil, opts: Options{Client: fake()}, wantErr: "inblob is 0 bytes"},
		{name: "oversized inblob", inblob: make([]byte, 65), opts: Options{Client: fake()}, wantErr: "inblob is 65 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Get(context.Background(), tc.inblob, tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, r)
		})
	}
}

func TestAbsentIsNoTEE(t *testing.T) {
	if Available() == nil {
		t.Skip("this machine has configfs-tsm")
	}
	_, err := Get(context.Background(), []byte{1}, Options{})
	if !errors.Is(err, enclave.ErrNoTEE) || !strings.Contains(err.Error(), ReportDir) {
		t.Fatalf("err = %v, want ErrNoTEE naming %s", err, ReportDir)
	}
}

func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Get(ctx, []byte{1}, Options{Client: fake()}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
}
