package aztpm_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/medicus-cloud/trust/enclave/aztpm"
)

// fakeIMDS answers the two confidential-VM endpoints as Azure documents them.
func fakeIMDS(t *testing.T, vcek []byte) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata") != "true" {
			http.Error(w, "no Metadata header", http.StatusBadRequest)
			return
		}
		switch {
		case r.Method == http.MethodPost && r.URL.Path == "/acc/tdquote":
			var req struct{ Report string }
			if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rep, err := base64.RawURLEncoding.DecodeString(req.Report)
			if err != nil || len(rep) != 1024 {
				http.Error(w, "bad report", http.StatusBadRequest)
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"quote": base64.URLEncoding.EncodeToString(append([]byte("quote of "), rep[:8]...))})
		case r.Method == http.MethodGet && r.URL.Path == "/metadata/THIM/amd/certification":
			_ = json.NewEncoder(w).Encode(map[string]string{"vcekCert": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: vcek})), "certificateChain": "", "tcbm": "DB18000000000004"})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func TestIMDS(t *testing.T) {
	s := fakeIMDS(t, []byte("vcek der"))
	c := &aztpm.IMDSClient{BaseURL: s.URL, HTTP: s.Client()}
	ctx := context.Background()
	rep := make([]byte, 1024)
	copy(rep, "tdreport")
	q, err := c.TDQuote(ctx, rep)
	if err != nil || !bytes.Equal(q, []byte("quote of tdreport")) {
		t.Fatalf("quote %q, %v", q, err)
	}
	v, err := c.VCEK(ctx)
	if err != nil || string(v) != "vcek der" {
		t.Fatalf("vcek %q, %v", v, err)
	}
	if _, err := c.TDQuote(ctx, rep[:10]); err == nil {
		t.Fatal("a refused request returned a quote")
	}
	bad := &aztpm.IMDSClient{BaseURL: s.URL + "/nowhere", HTTP: s.Client()}
	if _, err := bad.VCEK(ctx); err == nil {
		t.Fatal("404 gave a VCEK")
	}
}
