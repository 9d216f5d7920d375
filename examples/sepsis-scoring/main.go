// Command sepsis-scoring is the analytics example: a scoring job, running in a confidential VM,
// decrypts bedside vital signs, computes a qSOFA-like sepsis score per case, and writes the
// scores back encrypted. Keys come from trustd after attestation (here the INSECURE simulated
// TEE); no plaintext observation or score leaves the job, and it prints only counts.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/medicus-cloud/trust/enclave/simguest"
	"github.com/medicus-cloud/trust/sdk"
	"github.com/medicus-cloud/trust/sdk/envelope"
)

// image is the simulated launch measurement pinned in policy.yaml: "medicus trust example
// sepsis image v1" in hex.
const image = "6d656469637573207472757374206578616d706c652073657073697320696d616765207631"

func main() {
	addr := flag.String("addr", "127.0.0.1:7443", "trustd address")
	measurement := flag.String("measurement", image, "simulated launch measurement (hex)")
	tenant := flag.String("tenant", "klinikum-sued", "tenant whose cases are scored")
	cases := flag.Int("cases", 8, "number of generated cases")
	flag.Parse()
	if err := run(*addr, *measurement, *tenant, *cases, os.Stdout); err != nil {
		var d *sdk.DeniedError
		if errors.As(err, &d) {
			fmt.Fprintf(os.Stderr, "sepsis-scoring: trustd denied this workload: %v\n", d)
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "sepsis-scoring:", err)
		os.Exit(1)
	}
}

func run(addr, measurement, tenant string, cases int, out io.Writer) error {
	m, err := hex.DecodeString(measurement)
	if err != nil {
		return fmt.Errorf("--measurement: %w", err)
	}
	if cases < 2 || cases > 1000 {
		return errors.New("--cases must be 2..1000")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := sdk.New(ctx, sdk.Options{Addr: addr, Insecure: true, Provider: simguest.NewInsecure(simguest.Options{Measurement: m, SVN: 1})})
	if err != nil {
		return err
	}
	defer c.Close()
	return Demo(ctx, c.KeySource(), tenant, cases, out)
}

// observations makes six hourly observations for case i: every third case deteriorates.
func observations(caseID string, i int, start time.Time) []Vitals {
	var vs []Vitals
	for h := range 6 {
		v := Vitals{Case: caseID, Time: start.Add(time.Duration(h) * time.Hour), RespiratoryRate: 16, SystolicBP: 124, GCS: 15}
		if i%3 == 2 {
			v.RespiratoryRate += 2 * h // 26/min by the last observation
			v.SystolicBP -= 6 * h      // 94 mmHg
			if h >= 4 {
				v.GCS = 14
			}
		}
		vs = append(vs, v)
	}
	return vs
}

// Demo plays the three parties in one process: the monitor gateway encrypts observations into a
// directory per case, the scoring job scores every case, and the ward dashboard reads the scores.
// One record is then misfiled into another case's directory: that case is not scored.
func Demo(ctx context.Context, ks envelope.KeySource, tenant string, cases int, out io.Writer) error {
	dir, err := os.MkdirTemp("", "sepsis")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	// Monitor gateway.
	start := time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)
	records := 0
	for i := range cases {
		id := fmt.Sprintf("sp-%04d", i+1)
		if err := os.Mkdir(filepath.Join(dir, id), 0o700); err != nil {
			return err
		}
		for j, v := range observations(id, i, start) {
			js, _ := json.Marshal(v)
			ct, err := envelope.Encrypt(ctx, ks, VitalsKey, CaseContext(tenant, id, VitalsType), js)
			if err != nil {
				return fmt.Errorf("gateway: %w", err)
			}
			if err := os.WriteFile(filepath.Join(dir, id, fmt.Sprintf("obs-%02d.mtenv", j)), ct, 0o600); err != nil {
				return err
			}
			records++
		}
	}
	fmt.Fprintf(out, "sepsis: gateway stored %d encrypted observations for %d cases\n", records, cases)

	alerts, failed, err := scoreAll(ctx, ks, tenant, dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "sepsis: scored %d cases; %d with qSOFA >= 2 flagged for review; %d not scored; scores stored encrypted\n", cases-failed, alerts, failed)
	if failed != 0 {
		return fmt.Errorf("%d cases not scored", failed)
	}

	// A record misfiled into the next case's directory.
	from, to := filepath.Join(dir, "sp-0001", "obs-05.mtenv"), filepath.Join(dir, "sp-0002", "obs-99.mtenv")
	if err := os.Rename(from, to); err != nil {
		return err
	}
	alerts2, failed2, err := scoreAll(ctx, ks, tenant, dir)
	if err != nil {
		return err
	}
	if failed2 != 1 || alerts2 != alerts {
		return fmt.Errorf("after misfiling a record: %d not scored, %d alerts; want 1 and %d", failed2, alerts2, alerts)
	}
	fmt.Fprintln(out, "sepsis: after one record was misfiled into another case, that case was refused (not scored), the others unchanged")
	return nil
}

// scoreAll scores every case directory and then reads the scores back as the dashboard would.
// A case whose records do not all open is counted as failed, and its old score is removed.
func scoreAll(ctx context.Context, ks envelope.KeySource, tenant, dir string) (alerts, failed int, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		id := e.Name()
		files, err := filepath.Glob(filepath.Join(dir, id, "obs-*.mtenv"))
		if err != nil {
			return 0, 0, err
		}
		sort.Strings(files)
		var recs [][]byte
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return 0, 0, err
			}
			recs = append(recs, b)
		}
		scorePath := filepath.Join(dir, id, "qsofa.mtenv")
		_, ct, err := ScoreCase(ctx, ks, tenant, id, recs)
		if err != nil {
			// Fail closed: no stale score stays behind for a case that cannot be scored now.
			os.Remove(scorePath)
			failed++
			continue
		}
		if err := os.WriteFile(scorePath, ct, 0o600); err != nil {
			return 0, 0, err
		}
		// Ward dashboard.
		s, err := ReadScore(ctx, ks, tenant, id, ct)
		if err != nil {
			return 0, 0, fmt.Errorf("dashboard: %w", err)
		}
		if s.Alert {
			alerts++
		}
	}
	return alerts, failed, nil
}
