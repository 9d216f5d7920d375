package issuer

import (
	"crypto/ecdsa"
	"encoding/json"
	"github.com/medicus-cloud/trust/ear"
	"net/http"
	"slices"

	"time"
)

// PublishedKey is one key the issuer accepts, as GetTokenKeys publishes it.
type PublishedKey struct {
	ID     string
	Public *ecdsa.PublicKey
	// NotAfter is when a retired key stops being accepted (zero for the current key and where
	// none is known).
	NotAfter time.Time
}

// Published lists every key the issuer accepts, current first, with the time it stops being
// accepted where one is known. internal/wire turns it into the GetTokenKeys response.
func (i *Issuer) Published() []PublishedKey {
	var out []PublishedKey
	for _, kid := range i.kids() {
		k := PublishedKey{ID: kid, Public: i.keys[kid]}
		if t, ok := i.o.NotAfter[kid]; ok && kid != i.kid {
			k.NotAfter = t
		}
		out = append(out, k)
	}
	return out
}

// kids lists key IDs, the current one first and then in a stable order.
func (i *Issuer) kids() []string {
	var rest []string
	for kid := range i.keys {
		if kid != i.kid {
			rest = append(rest, kid)
		}
	}
	slices.Sort(rest)
	return append([]string{i.kid}, rest...)
}

// JWKS returns the JWK Set of every key the issuer accepts, current first.
func (i *Issuer) JWKS() ([]byte, error) {
	set := ear.JWKSet{Keys: []ear.JWK{}}
	for _, kid := range i.kids() {
		k, err := ear.NewJWK(i.keys[kid])
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, k)
	}
	return json.Marshal(set)
}

// JWKSHandler serves the JWK Set of the issuer that current returns at each request, so that
// trustd can swap issuers on rotation (for example from an atomic.Pointer).
func JWKSHandler(current func() *Issuer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		i := current()
		if i == nil {
			http.Error(w, "no token keys", http.StatusServiceUnavailable)
			return
		}
		b, err := i.JWKS()
		if err != nil {
			http.Error(w, "no token keys", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		// Short: a rotation must reach relying parties well within DefaultKeep.
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(b)
	})
}
