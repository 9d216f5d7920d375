// Package docvec reads and rewrites the test vectors of the Markdown specifications in docs/:
// a vector is the fenced code block that follows a line "<!-- vector: NAME -->". Go tests check
// the documents' vectors against the code, and rewrite them with -update.
package docvec

import (
	"fmt"
	"os"
	"strings"
)

type vector struct {
	name       string
	start, end int // lines of the content: [start, end)
}

func parse(path string, lines []string) ([]vector, error) {
	var out []vector
	for i := 0; i < len(lines); i++ {
		name, ok := strings.CutPrefix(lines[i], "<!-- vector: ")
		if !ok {
			continue
		}
		name, ok = strings.CutSuffix(name, " -->")
		if !ok || i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			return nil, fmt.Errorf("%s:%d: vector marker without a code block", path, i+1)
		}
		v := vector{name: name, start: i + 2}
		for v.end = v.start; v.end < len(lines) && !strings.HasPrefix(lines[v.end], "```"); v.end++ {
		}
		if v.end == len(lines) {
			return nil, fmt.Errorf("%s:%d: vector %q: unterminated code block", path, i+1, name)
		}
		out = append(out, v)
		i = v.end
	}
	return out, nil
}

// Read returns the vectors of a document by name.
func Read(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	vs, err := parse(path, lines)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, v := range vs {
		if _, dup := out[v.name]; dup {
			return nil, fmt.Errorf("%s: vector %q twice", path, v.name)
		}
		out[v.name] = strings.Join(lines[v.start:v.end], "\n")
	}
	return out, nil
}

// Update replaces the named vectors' contents in the document; every name must be present.
func Update(path string, vectors map[string]string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(string(b), "\n")
	vs, err := parse(path, lines)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var out []string
	last := 0
	for _, v := range vs {
		out = append(out, lines[last:v.start]...)
		if content, ok := vectors[v.name]; ok {
			seen[v.name] = true
			out = append(out, strings.Split(strings.TrimRight(content, "\n"), "\n")...)
		} else {
			out = append(out, lines[v.start:v.end]...)
		}
		last = v.end
	}
	out = append(out, lines[last:]...)
	for name := range vectors {
		if !seen[name] {
			return fmt.Errorf("%s: no vector %q", path, name)
		}
	}
	return os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644)
}
