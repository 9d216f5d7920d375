package metrics_test

import (
	"context"
	"flag"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/medicus-cloud/trust/attest"
	"github.com/medicus-cloud/trust/metrics"
)

var update = flag.Bool("update", false, "rewrite golden files")

type fakeCollateral []attest.CollateralAge

func (f fakeCollateral) CollateralAges() []attest.CollateralAge { return f }

// TestCollateralStatusGolden: collateral ages reach the metrics page per TEE, platform and item,
// and `trustctl status` prints them.
func TestCollateralStatusGolden(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := metrics.NewRegistry()
	m, err := metrics.New(reg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.UnaryInterceptor()(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/medicus.trust.v1.Trust/Attest"},
		func(context.Context, any) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	snp := fakeCollateral{
		{TEE: attest.SEVSNP, Platform: "Milan", Item: "crl-vcek", FetchedAt: now.Add(-42 * time.Minute)},
		{TEE: attest.SEVSNP, Platform: "Genoa", Item: "crl-vlek", FetchedAt: now.Add(-7 * time.Hour), Failing: true},
	}
	tdx := fakeCollateral{{TEE: attest.TDX, Platform: "00806f050000/platform", Item: "pcs-collateral", FetchedAt: now.Add(-90 * time.Second)}}
	if err := metrics.RegisterCollateral(reg, nil, func() time.Time { return now }, snp, tdx); err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(web.Close)
	st, err := metrics.FetchStatus(context.Background(), web.Client(), web.URL)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := st.Print(&out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	got = got[strings.Index(got, "COLLATERAL"):]
	golden := filepath.Join("testdata", "status_collateral.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("status collateral:\n%s\nwant:\n%s", got, want)
	}
}
