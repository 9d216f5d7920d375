// Package pgtest starts throw-away PostgreSQL servers for tests: the audit log's own, and
// trustd's replica tests. It needs the distribution's server binaries (scripts/postgres-test.sh
// installs them); without them a test skips with a message, or fails when CI=true.
package pgtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
)

// Cluster is a throw-away PostgreSQL server for one test: initdb into a temporary directory,
// listening on 127.0.0.1 on a free port with its socket in that directory, trust
// authentication. It is stopped and removed when the test ends.
type Cluster struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	as   string // OS user to run the server as ("" for the current one)
}

// pgBin finds the PostgreSQL server binaries: $PG_BIN, else the newest Debian install, else PATH.
func pgBin() string {
	if d := os.Getenv("PG_BIN"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
		return ""
	}
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(ms, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(ms[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(ms[j]))))
		return vi < vj
	})
	if len(ms) > 0 {
		return filepath.Dir(ms[len(ms)-1])
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// Start initdb's and starts a server for t, stopped and removed when t ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin := pgBin()
	if bin == "" {
		msg := "PostgreSQL server binaries (initdb, pg_ctl) not found: run scripts/postgres-test.sh or set PG_BIN"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	c := &Cluster{t: t, bin: bin}
	// initdb and postgres refuse to run as root: run them as the postgres user, in a directory
	// it owns (t.TempDir's parents are not reachable by it).
	dir, err := os.MkdirTemp("", "pglog-test-")
	if err != nil {
		t.Fatal(err)
	}
	c.dir = dir
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user to run the server as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = "postgres"
	}
	c.run("initdb", "--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8", "-D", c.data())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	c.Start()
	t.Cleanup(func() { c.Stop("immediate") })
	return c
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	if c.as != "" {
		cmd = exec.Command("runuser", append([]string{"-u", c.as, "--", filepath.Join(c.bin, name)}, args...)...)
	}
	cmd.Dir = c.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
		c.t.Fatalf("%s %v: %v\n%s\nserver log:\n%s", name, args, err, out.Bytes(), log)
	}
}

// Start starts the server again after Stop.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "server.log"), "-w", "-t", "60", "start",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=50", c.port, c.dir))
}

// Stop stops the server: "fast" rolls back open transactions, "immediate" is a crash (the next
// start replays the WAL).
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, "pg_ctl"), "-D", c.data(), "-m", mode, "-w", "stop")
	if c.as != "" {
		cmd = exec.Command("runuser", "-u", c.as, "--", filepath.Join(c.bin, "pg_ctl"), "-D", c.data(), "-m", mode, "-w", "stop")
	}
	_ = cmd.Run() // already stopped is fine
}

// DSN is the connection string of the server's postgres database.
func (c *Cluster) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}
