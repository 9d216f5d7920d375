// Package benchratio prints the "ratio NAME VALUE" lines of make bench: a measurement against its
// floor (the raw library or crypto cost) taken in the same run, so that the figure means the same
// on any machine.
//
// Call it from a benchmark named BenchmarkRatio...; make bench runs those with -benchtime=1x.
// The subject and the floor are functions that do their work n times. A ratio is measured in
// Rounds rounds that alternate subject and floor, each sized to run for about Target/Rounds,
// and the median of the rounds' ratios is printed: a slow spell of the machine (another
// process, a slow disk flush, a garbage collection) then falls on one round, and on both
// sides of it, rather than on one side of the whole ratio. (testing.Benchmark cannot be used here: every benchmark body runs under
// the testing package's benchmark lock, and a nested testing.Benchmark waits on it forever.)
package benchratio

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"
)

var printed sync.Map

// now is the clock of every measurement; tests replace it with one the measured work advances.
var now = time.Now

// Target is how long each side of a ratio runs in all, and each NsPerOp measurement.
var Target = time.Second

// Rounds is how many alternating rounds a ratio is measured in.
const Rounds = 5

// Time prints subject time per op divided by floor time per op: lower is better, 1 is the floor.
func Time(b *testing.B, name string, subject, floor func(n int)) float64 {
	b.Helper()
	s, f, r := rounds(subject, floor)
	detail(name, s, f)
	return emit(b, name, r)
}

// Throughput prints subject throughput divided by floor throughput, for the same work per op:
// higher is better, 1 is the floor.
func Throughput(b *testing.B, name string, subject, floor func(n int)) float64 {
	b.Helper()
	s, f, r := rounds(subject, floor)
	detail(name, s, f)
	return emit(b, name, 1/r)
}

// rounds calibrates subject and floor, runs them in Rounds alternating rounds and returns the
// median time per op of each and the median of the rounds' ratios subject/floor.
func rounds(subject, floor func(n int)) (s, f, ratio float64) {
	per := Target / Rounds
	ns, nf := calibrate(subject, per), calibrate(floor, per)
	var ss, fs, rs []float64
	for range Rounds {
		a, b := timed(subject, ns), timed(floor, nf)
		ss, fs, rs = append(ss, a), append(fs, b), append(rs, a/b)
	}
	return median(ss), median(fs), median(rs)
}

// calibrate warms f up and returns how many ops take about d.
func calibrate(f func(n int), d time.Duration) int {
	_, per := grow(f, d)
	return max(int(float64(d)/max(per, 1)), 1)
}

// grow warms f up and runs it with n = 1, 10, 100, ... until one run takes at least d/10; it
// returns that n and the run's nanoseconds per op.
func grow(f func(n int), d time.Duration) (n int, per float64) {
	f(1) // warm up caches and lazily built state
	for n = 1; ; n *= 10 {
		per = timed(f, n)
		if per*float64(n) >= float64(d)/10 || n >= 1<<30 {
			return n, per
		}
	}
}

// timed runs f(n) after a garbage collection and returns nanoseconds per op.
func timed(f func(n int), n int) float64 {
	runtime.GC()
	start := now()
	f(n)
	return float64(now().Sub(start)) / float64(n)
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

// Value prints a figure that is already a ratio or a plain measurement (for example a peak heap
// in MiB) in the same form.
func Value(b *testing.B, name string, v float64) float64 {
	b.Helper()
	return emit(b, name, v)
}

// NsPerOp runs f with growing n until one run takes at least Target/10, then once more sized to
// take about Target (unless that run took half of it already), and returns nanoseconds per op of
// the last run.
func NsPerOp(f func(n int)) float64 {
	n, per := grow(f, Target)
	if per*float64(n) >= float64(Target)/2 {
		return per
	}
	return timed(f, max(int(float64(Target)/max(per, 1)), n+1))
}

// detail prints both sides of a ratio in nanoseconds per op when BENCHRATIO_DETAIL is set, so
// that a change in a ratio can be told apart from a change in its floor.
func detail(name string, subject, floor float64) {
	if os.Getenv("BENCHRATIO_DETAIL") != "" {
		fmt.Fprintf(os.Stdout, "detail %s subject %.0f ns/op floor %.0f ns/op\n", name, subject, floor)
	}
}

func emit(b *testing.B, name string, v float64) float64 {
	b.Helper()
	if _, dup := printed.LoadOrStore(name, true); !dup {
		fmt.Fprintf(os.Stdout, "ratio %s %.3f\n", name, v)
	}
	b.ReportMetric(v, "ratio")
	return v
}

// PerOp is NsPerOp for a single operation that can fail: an error fails the benchmark.
func PerOp(tb testing.TB, f func() error) float64 {
	tb.Helper()
	return NsPerOp(func(n int) {
		for range n {
			if err := f(); err != nil {
				tb.Fatal(err)
			}
		}
	})
}
