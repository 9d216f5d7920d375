package loadtest_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/medicus-cloud/trust/audit"
	"github.com/medicus-cloud/trust/internal/trustdtest"
)

// memAudit keeps records in memory: the load test measures the service, not the disk.
type memAudit struct {
	mu sync.Mutex
	n  uint64
}

func (m *memAudit) Append(context.Context, *audit.Record) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.n++
	return m.n - 1, nil
}

func measurement() []byte {
	m := make([]byte, 48)
	copy(m, "medicus trust loadtest image v1")
	return m
}

const (
	keyName    = "loadtest/records"
	secretName = "loadtest/api-token"
)

// startTrustd starts trustd's service on 127.0.0.1 with the simulated TEE accepted, a local
// keyring and an in-memory audit log; opts are extra server options (interceptors, limits).
func startTrustd(tb testing.TB, opts ...grpc.ServerOption) string {
	tb.Helper()
	s := trustdtest.StartTB(tb, trustdtest.Options{
		Image: &trustdtest.Image{Name: "loadtest", Measurement: measurement(),
			Secrets: []string{secretName}, DataKeys: []string{keyName}},
		DataKeys: []string{keyName},
		Secrets:  map[string]string{secretName: "loadtest-token"},
		Audit:    &memAudit{},
		Server:   opts,
	})
	return s.Addr
}
