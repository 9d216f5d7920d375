package aztpm

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// IMDS is Azure's instance metadata service, reachable from inside every Azure VM.
const IMDS = "http://169.254.169.254"

// maxIMDSResponse bounds what is read from IMDS.
const maxIMDSResponse = 1 << 20

// IMDSClient talks to the IMDS endpoints of Azure confidential VMs.
type IMDSClient struct {
	// BaseURL is IMDS; "" means the IMDS constant. Tests point it at a local server.
	BaseURL string
	// HTTP is the client; nil means http.DefaultClient. IMDS is link-local: no proxy.
	HTTP *http.Client
}

func (c *IMDSClient) do(req *http.Request) ([]byte, error) {
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{Proxy: nil}}
	}
	req.Header.Set("Metadata", "true")
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxIMDSResponse))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: HTTP %d", req.Method, req.URL.Path, resp.StatusCode)
	}
	return b, nil
}

func (c *IMDSClient) url(path string) string {
	base := c.BaseURL
	if base == "" {
		base = IMDS
	}
	return strings.TrimRight(base, "/") + path
}

// TDQuote asks Azure's quoting service (POST /acc/tdquote) for the TD quote of a TD report: the
// request and the answer carry base64url, {"report": ...} and {"quote": ...}. It suits
// Provider.TDQuote.
func (c *IMDSClient) TDQuote(ctx context.Context, tdReport []byte) ([]byte, error) {
	body, _ := json.Marshal(map[string]string{"report": base64.RawURLEncoding.EncodeToString(tdReport)})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url("/acc/tdquote"), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	b, err := c.do(req)
	if err != nil {
		return nil, err
	}
	var r struct {
		Quote string `json:"quote"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.Quote == "" {
		return nil, errors.New("IMDS answered no quote")
	}
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(r.Quote, "="))
}

// VCEK fetches the VCEK (DER) that the Azure host caches for this chip and TCB (GET
// /metadata/THIM/amd/certification, field vcekCert in PEM). The verifier checks it against AMD's
// chain like any other copy.
func (c *IMDSClient) VCEK(ctx context.Context) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/metadata/THIM/amd/certification"), nil)
	if err != nil {
		return nil, err
	}
	b, err := c.do(req)
	if err != nil {
		return nil, err
	}
	var r struct {
		VCEK string `json:"vcekCert"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("IMDS certification: %v", err)
	}
	blk, _ := pem.Decode([]byte(r.VCEK))
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("IMDS certification: no PEM vcekCert")
	}
	return blk.Bytes, nil
}
