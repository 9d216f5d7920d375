package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/kms/local"
	"github.com/medicus-cloud/trust/policies"
	"github.com/medicus-cloud/trust/release"
	"github.com/medicus-cloud/trust/sdk/envelope"
	"github.com/medicus-cloud/trust/secret"
)

const (
	tenant = "klinikum-nord"
	room   = "!ward3:medicus.local"
)

// localKeys is a real local keyring in a temporary directory, standing in for trustd.
func localKeys(t *testing.T) envelope.KeySource {
	t.Helper()
	kr, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{5}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.CreateKey(context.Background(), AttachmentKey); err != nil {
		t.Fatal(err)
	}
	return envelope.FromKeyStore(kr)
}

func newStore(t *testing.T) *DirStore { return &DirStore{Dir: t.TempDir(), Server: "medicus.local"} }

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := Demo(context.Background(), localKeys(t), tenant, room, "", &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "identical") || !strings.Contains(out.String(), "does not open there") {
		t.Fatalf("unexpected output:\n%s", out.String())
	}
}

func TestReceive(t *testing.T) {
	ctx := context.Background()
	ks := localKeys(t)
	store := newStore(t)
	data := bytes.Repeat([]byte("handover note; "), 20000)
	ev, err := Send(ctx, ks, store, tenant, room, "note.txt", "text/plain", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if ev.Info.Size != int64(len(data)) || ev.MsgType != "m.file" {
		t.Fatalf("event %+v", ev)
	}
	_, id, _ := ParseMXC(ev.URL)
	blob := filepath.Join(store.Dir, id)
	raw, _ := os.ReadFile(blob)
	if bytes.Contains(raw, []byte("handover note")) {
		t.Fatal("media store holds plaintext")
	}
	with := func(f func(e *Event)) *Event { e := *ev; f(&e); return &e }

	tests := []struct {
		name         string
		tenant, room string
		ev           *Event
		tamper       bool
		want         error
	}{
		{"same room", tenant, room, ev, false, nil},
		{"forwarded to another room", tenant, "!other:medicus.local", ev, false, envelope.ErrWrongContext},
		{"another tenant", "klinikum-sued", room, ev, false, envelope.ErrWrongContext},
		{"mimetype changed", tenant, room, with(func(e *Event) { e.Info.Mimetype = "text/html" }), false, envelope.ErrWrongContext},
		{"size understated", tenant, room, with(func(e *Event) { e.Info.Size-- }), false, ErrBadEvent},
		{"size overstated", tenant, room, with(func(e *Event) { e.Info.Size++ }), false, ErrBadEvent},
		{"url to a path", tenant, room, with(func(e *Event) { e.URL = "mxc://medicus.local/../keyring" }), false, ErrBadEvent},
		{"tampered blob", tenant, room, ev, true, envelope.ErrChunkAuth},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tamper {
				bad := bytes.Clone(raw)
				bad[len(bad)-100] ^= 1
				os.WriteFile(blob, bad, 0o600)
				defer os.WriteFile(blob, raw, 0o600)
			}
			path := filepath.Join(t.TempDir(), "out")
			err := Save(ctx, ks, store, tc.tenant, tc.room, tc.ev, path)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			got, rerr := os.ReadFile(path)
			if tc.want == nil && !bytes.Equal(got, data) {
				t.Fatal("received attachment differs")
			}
			if tc.want != nil && rerr == nil {
				t.Fatal("a refused attachment was saved")
			}
		})
	}
}

func TestSendRefuses(t *testing.T) {
	ctx := context.Background()
	ks := localKeys(t)
	tests := []struct{ name, fname, mime string }{
		{"path in name", "../x", "text/plain"},
		{"empty name", "", "text/plain"},
		{"bad mimetype", "a.txt", "text plain"},
	}
	for _, tc := range tests {
		if _, err := Send(ctx, ks, newStore(t), tenant, room, tc.fname, tc.mime, strings.NewReader("x")); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
	if _, err := Send(ctx, ks, newStore(t), tenant, room, "a.txt", "text/plain", io.LimitReader(zeros{}, MaxAttachment+1)); err == nil {
		t.Error("oversized attachment sent")
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestParseEvent(t *testing.T) {
	good := `{"msgtype":"m.file","body":"a.pdf","url":"mxc://medicus.local/abc_-1","info":{"mimetype":"application/pdf","size":10}}`
	if _, err := ParseEvent([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{
		``, `{}`, `null`, good + `{}`,
		strings.Replace(good, `"m.file"`, `"m.text"`, 1),
		strings.Replace(good, `"size":10`, `"size":-1`, 1),
		strings.Replace(good, `"size":10`, `"size":10,"key":"x"`, 1),
		strings.Replace(good, `mxc://medicus.local/abc_-1`, `https://medicus.local/abc`, 1),
		strings.Replace(good, `mxc://medicus.local/abc_-1`, `mxc://medicus.local/a/b`, 1),
		strings.Replace(good, `"a.pdf"`, `"a/b.pdf"`, 1),
	} {
		if _, err := ParseEvent([]byte(bad)); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: err = %v", bad, err)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	ev := &Event{MsgType: "m.image", Body: "x-ray.png", URL: "mxc://medicus.local:8448/Zq9", Info: FileInfo{Mimetype: "image/png", Size: 1234}}
	js, _ := json.Marshal(ev)
	f.Add(js)
	f.Add([]byte(`{"msgtype":"m.file","body":"a","url":"mxc://a/b","info":{"mimetype":"a/b","size":0}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := ParseEvent(b)
		if err != nil {
			return
		}
		// What passes re-encodes and parses to the same event.
		js, _ := json.Marshal(ev)
		ev2, err := ParseEvent(js)
		if err != nil || *ev2 != *ev {
			t.Fatalf("round trip: %v", err)
		}
		if _, id, _ := ParseMXC(ev.URL); strings.ContainsAny(id, "./\\") {
			t.Fatalf("media ID %q could be a path", id)
		}
	})
}

func FuzzParseMXC(f *testing.F) {
	for _, s := range []string{"mxc://medicus.local/abc", "mxc://a:1/b", "mxc://x/../y", "mxc:///a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		server, id, err := ParseMXC(s)
		if err != nil {
			return
		}
		if "mxc://"+server+"/"+id != s || strings.ContainsAny(id, "./\\") || id == "" {
			t.Fatalf("ParseMXC(%q) = %q, %q", s, server, id)
		}
	})
}

// TestPolicy keeps policy.yaml valid and granting what the example asks for.
func TestPolicy(t *testing.T) {
	b, err := policies.Load("policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name := "messenger-attachments-example"
	if err := b.CheckContext(name, release.GrantDataKey, AttachmentKey, AttachmentContext(tenant, room, "application/pdf")); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckContext(name, release.GrantDataKey, AttachmentKey, kms.Context{"tenant": "elsewhere", "room": room}); err == nil {
		t.Fatal("attachment key granted to an unknown tenant")
	}
}
