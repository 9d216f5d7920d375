package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
)

// Profiling for `make profile`, off unless asked for: MEDICUS_TRUSTD_CPUPROFILE names a file for
// a CPU profile of the life of the process, MEDICUS_TRUSTD_ALLOCPROFILE one for an allocation
// profile written at a clean exit (SIGTERM).
const (
	cpuProfileEnv   = "MEDICUS_TRUSTD_CPUPROFILE"
	allocProfileEnv = "MEDICUS_TRUSTD_ALLOCPROFILE"
)

func startProfiles() (stop func(), err error) {
	var cpu *os.File
	if p := os.Getenv(cpuProfileEnv); p != "" {
		if cpu, err = os.Create(p); err != nil {
			return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("%s: %w", cpuProfileEnv, err)
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if p := os.Getenv(allocProfileEnv); p != "" {
			if f, err := os.Create(p); err == nil {
				runtime.GC()
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}, nil
}
