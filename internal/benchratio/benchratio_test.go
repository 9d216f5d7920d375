package benchratio

import (
	"testing"
	"time"
)

func spin(d time.Duration) func(n int) {
	return func(n int) {
		for range n {
			end := time.Now().Add(d)
			for time.Now().Before(end) {
			}
		}
	}
}

// The rounds' median tells a subject that costs twice its floor.
func TestRounds(t *testing.T) {
	old := Target
	Target = 50 * time.Millisecond
	defer func() { Target = old }()
	s, f, r := rounds(spin(200*time.Microsecond), spin(100*time.Microsecond))
	if r < 1.6 || r > 2.5 {
		t.Errorf("ratio %.2f (subject %.0f ns, floor %.0f ns), want about 2", r, s, f)
	}
}

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{{[]float64{3}, 3}, {[]float64{5, 1, 3}, 3}, {[]float64{9, 1, 8, 2, 7}, 7}} {
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
