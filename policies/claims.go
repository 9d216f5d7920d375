package policies

import (
	"bytes"
	"encoding/json"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/attest/schemes"
)

// ReadClaims reads attest.Claims from JSON strictly.
func ReadClaims(name string) (*attest.Claims, error) {
	src, err := readBounded(name)
	if err != nil {
		return nil, err
	}
	return parseClaims(name, src)
}

func parseClaims(name string, src []byte) (*attest.Claims, error) {
	// What `trustctl evidence verify --format json` prints holds the claims under "claims".
	var printed struct {
		Verified *bool           `json:"verified"`
		Claims   json.RawMessage `json:"claims"`
	}
	if json.Unmarshal(src, &printed) == nil && printed.Verified != nil {
		if !*printed.Verified || len(printed.Claims) == 0 {
			return nil, &Error{File: name, Msg: "the evidence did not verify: no claims to appraise"}
		}
		src = printed.Claims
	}
	dec := json.NewDecoder(bytes.NewReader(src))
	dec.DisallowUnknownFields()
	var c attest.Claims
	if err := dec.Decode(&c); err != nil {
		return nil, jsonError(name, src, err, dec.InputOffset())
	}
	if c.TEE != "" {
		t, err := schemes.ParseTEE(string(c.TEE))
		if err != nil {
			return nil, &Error{File: name, Msg: err.Error()}
		}
		c.TEE = t
	}
	return &c, nil
}
