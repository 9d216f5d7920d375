package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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

// localKeys is a real local keyring in a temporary directory, standing in for trustd.
func localKeys(t *testing.T) envelope.KeySource {
	t.Helper()
	kr, err := local.Open(local.Options{Path: filepath.Join(t.TempDir(), "keyring"), MasterKey: secret.New(bytes.Repeat([]byte{9}, 32))})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.CreateKey(context.Background(), ImagingKey); err != nil {
		t.Fatal(err)
	}
	return envelope.FromKeyStore(kr)
}

func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 26 MB")
	}
	var out bytes.Buffer
	err := Demo(context.Background(), localKeys(t), secret.New([]byte("viewer-token")), t.TempDir(), 26<<20, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, want := range []string{"uploaded", "checksum matches", "Range request", "refused (401)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestStudy(t *testing.T) {
	s := StudyForSize(3<<20, 7)
	var buf bytes.Buffer
	n, err := s.WriteTo(&buf)
	if err != nil || n != s.Size() || int64(buf.Len()) != s.Size() {
		t.Fatalf("WriteTo: %d bytes, Size %d, %v", n, s.Size(), err)
	}
	b := buf.Bytes()
	if string(b[128:132]) != "DICM" {
		t.Fatal("no DICM prefix")
	}
	off := s.FrameOffset(5)
	if !bytes.Equal(b[off:off+int64(s.FrameSize())], s.Frame(5)) {
		t.Fatal("FrameOffset does not point at the frame")
	}
	if _, err := (Study{}).WriteTo(io.Discard); err == nil {
		t.Fatal("empty study accepted")
	}
}

func TestViewer(t *testing.T) {
	ctx := context.Background()
	ks := localKeys(t)
	dir := t.TempDir()
	v := &Viewer{Keys: ks, Token: secret.New([]byte("tok")), Dir: dir}
	s := Study{Rows: 64, Columns: 64, Frames: 40, Seed: 3}
	kc := StudyContext("klinikum-nord", "tc-1")
	upload := func(id string) []byte {
		var plain, enc bytes.Buffer
		s.WriteTo(&plain)
		if _, err := Upload(ctx, ks, &enc, bytes.NewReader(plain.Bytes()), kc); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(v.StudyPath(id), enc.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		return plain.Bytes()
	}
	plain := upload("good")
	v.Register("good", kc)
	upload("tampered")
	v.Register("tampered", kc)
	raw, _ := os.ReadFile(v.StudyPath("tampered"))
	raw[len(raw)/2] ^= 1
	os.WriteFile(v.StudyPath("tampered"), raw, 0o600)
	upload("other-case")
	v.Register("other-case", StudyContext("klinikum-nord", "tc-2"))

	srv := httptest.NewServer(v)
	defer srv.Close()
	frame := s.FrameOffset(2)
	tests := []struct {
		name, id, token, rng string
		status               int
		body                 []byte // nil: not checked
	}{
		{"whole study", "good", "tok", "", http.StatusOK, plain},
		{"one frame", "good", "tok", fmt.Sprintf("bytes=%d-%d", frame, frame+int64(s.FrameSize())-1), http.StatusPartialContent, s.Frame(2)},
		{"no token", "good", "", "", http.StatusUnauthorized, nil},
		{"wrong token", "good", "tok2", "", http.StatusUnauthorized, nil},
		{"unknown study", "nope", "tok", "", http.StatusNotFound, nil},
		{"sealed for another case", "other-case", "tok", "", http.StatusBadGateway, nil},
		{"untouched frame of a tampered study", "tampered", "tok", "bytes=0-99", http.StatusPartialContent, plain[:100]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/studies/"+tc.id, nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			if tc.rng != "" {
				req.Header.Set("Range", tc.rng)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || (tc.body != nil && !bytes.Equal(body, tc.body)) {
				t.Fatalf("status %d, %d bytes", resp.StatusCode, len(body))
			}
		})
	}

	// Streaming a tampered study stops at the bad chunk: the viewer gets a cut transfer and
	// never the tampered bytes.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/studies/tampered", nil)
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || len(body) >= len(plain) || !bytes.Equal(body, plain[:len(body)]) {
		t.Fatalf("tampered study: %d of %d bytes, err %v", len(body), len(plain), err)
	}
}

// TestPolicy keeps policy.yaml valid and granting what the example asks for.
func TestPolicy(t *testing.T) {
	b, err := policies.Load("policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := b.Policy("teleconsult-example")
	if p == nil {
		t.Fatal("policy teleconsult-example missing")
	}
	if err := b.CheckContext(p.Metadata.Name, release.GrantDataKey, ImagingKey, StudyContext("klinikum-nord", "tc-1")); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckContext(p.Metadata.Name, release.GrantSecret, ViewerTokenSecret, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.CheckContext(p.Metadata.Name, release.GrantDataKey, ImagingKey, kms.Context{"content-type": "text/plain"}); err == nil {
		t.Fatal("imaging key granted for another content type")
	}
}
