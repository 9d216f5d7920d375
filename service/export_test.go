package service

// SkipReappraisalForBenchmark turns re-appraisal off, for the baseline of
// BenchmarkRatioReleaseReappraise only.
func SkipReappraisalForBenchmark(s *Service) { s.noReappraise = true }
