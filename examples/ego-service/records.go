package main

import (
	"io"
	"net/http"
	"sync"

	"github.com/medicus-cloud/trust/kms"
	"github.com/medicus-cloud/trust/sdk/envelope"
)

// maxRecord bounds a stored record.
const maxRecord = 1 << 20

// records is the HTTP API over envelope-encrypted records.
type records struct {
	keys    envelope.KeySource
	keyName string
	tenant  string

	mu    sync.Mutex
	store map[string][]byte // case -> envelope ciphertext
}

// newHandler serves the records API and, at GET /attestation, attDoc (the quote binding the TLS
// key). Every request must have come over TLS with a verified client certificate: the server's
// TLS configuration demands one, and the handler refuses any request without one as well, so that
// a misconfigured listener cannot hand a record to an unauthenticated caller.
func newHandler(keys envelope.KeySource, keyName, tenant string, attDoc []byte) http.Handler {
	r := &records{keys: keys, keyName: keyName, tenant: tenant, store: map[string][]byte{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /attestation", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(attDoc)
	})
	mux.HandleFunc("PUT /records/{case}", r.put)
	mux.HandleFunc("GET /records/{case}", r.get)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.TLS == nil || len(req.TLS.VerifiedChains) == 0 {
			http.Error(w, "a hospital client certificate is required", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, req)
	})
}

// context binds a record's data key to its tenant and case: a ciphertext moved to another case
// does not open.
func (r *records) context(id string) kms.Context {
	return kms.Context{"tenant": r.tenant, "case": id, "content-type": "application/octet-stream"}
}

func (r *records) put(w http.ResponseWriter, req *http.Request) {
	id, err := caseID(req.PathValue("case"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxRecord))
	if err != nil {
		http.Error(w, "record too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	ct, err := envelope.Encrypt(req.Context(), r.keys, r.keyName, r.context(id), body)
	if err != nil {
		http.Error(w, "cannot encrypt the record: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	r.mu.Lock()
	r.store[id] = ct
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *records) get(w http.ResponseWriter, req *http.Request) {
	id, err := caseID(req.PathValue("case"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	ct, ok := r.store[id]
	r.mu.Unlock()
	if !ok {
		http.Error(w, "no record for case "+id, http.StatusNotFound)
		return
	}
	pt, err := envelope.Decrypt(req.Context(), r.keys, r.context(id), ct)
	if err != nil {
		http.Error(w, "cannot decrypt the record: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(pt)
}
