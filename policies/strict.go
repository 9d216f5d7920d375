package policies

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// posError is a schema error at a YAML node; parseFile adds the file name.
type posError struct {
	line, col int
	msg       string
}

func (e *posError) Error() string { return fmt.Sprintf("line %d column %d: %s", e.line, e.col, e.msg) }

func at(n *yaml.Node, format string, args ...any) *posError {
	return &posError{line: n.Line, col: n.Column, msg: fmt.Sprintf(format, args...)}
}

func reflectTypeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

var (
	unmarshalerType     = reflect.TypeFor[yaml.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// strictNode checks that n has the shape of type t before yaml.v3 decodes it: every mapping key
// is a known field, mappings, sequences and scalars are where they belong, and scalars decode. It
// exists because yaml.v3 reports only the line of the first problem, and policy authors deserve
// the column and the field path. Anchors and aliases are refused: a reviewer should read every
// value where it applies.
func strictNode(n *yaml.Node, t reflect.Type) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return at(n, "anchors and aliases are not allowed in policies")
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			if pe, ok := err.(*posError); ok {
				return pe
			}
			return at(n, "%s", cleanYAMLError(err))
		}
		return nil
	}
	if t.Kind() == reflect.Pointer {
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		return strictNode(n, t.Elem())
	}
	if reflect.PointerTo(t).Implements(textUnmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			return at(n, "want a %s, found %s", describe(t), kindName(n))
		}
		v := reflect.New(t)
		if err := v.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			return at(n, "%v", err)
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return at(n, "want a mapping, found %s", kindName(n))
		}
		fields := map[string]reflect.StructField{}
		var listed []string // known fields as errors list them: not the removed ones
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" || !f.IsExported() {
				continue
			}
			fields[name] = f
			if f.Tag.Get("policy") != "removed" {
				listed = append(listed, name)
			}
		}
		sort.Strings(listed)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return at(k, "mapping keys must be field names")
			}
			f, ok := fields[k.Value]
			if !ok {
				return at(k, "unknown field %q (known: %s)", k.Value, strings.Join(listed, ", "))
			}
			if seen[k.Value] {
				return at(k, "field %q given twice", k.Value)
			}
			seen[k.Value] = true
			if err := strictNode(v, f.Type); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return at(n, "want a mapping, found %s", kindName(n))
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!null" {
				return at(k, "mapping keys must be names")
			}
			if seen[k.Value] {
				return at(k, "key %q given twice", k.Value)
			}
			seen[k.Value] = true
			if err := strictNode(v, t.Elem()); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return at(n, "want a list, found %s", kindName(n))
		}
		for _, c := range n.Content {
			if err := strictNode(c, t.Elem()); err != nil {
				return err
			}
		}
		return nil
	case reflect.String:
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!str" && n.Tag != "!!int") {
			return at(n, "want a string, found %s (quote it)", kindName(n))
		}
		return nil
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return at(n, "want true or false, found %s", kindName(n))
		}
		return nil
	case reflect.Uint64, reflect.Uint32, reflect.Int:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return at(n, "want a whole number, found %s", kindName(n))
		}
		v := reflect.New(t)
		if err := n.Decode(v.Interface()); err != nil {
			return at(n, "%q does not fit a %s", n.Value, describe(t))
		}
		return nil
	}
	return at(n, "unsupported field type %s", t)
}

func describe(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "hex string"
		}
	case reflect.Uint64:
		return "non-negative 64-bit number"
	}
	return t.String()
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "boolean " + n.Value
		case "!!int", "!!float":
			return "number " + n.Value
		}
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "an empty document"
}

func cleanYAMLError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if te, ok := err.(*yaml.TypeError); ok && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	if i := strings.Index(msg, ": "); strings.HasPrefix(msg, "line ") && i > 0 {
		msg = msg[i+2:]
	}
	return msg
}

// nodeAt follows a path of mapping keys (string) and sequence indexes (int) from n and returns
// the deepest node it reached, so that semantic errors point as close to the problem as they can.
func nodeAt(n *yaml.Node, path ...any) *yaml.Node {
	for _, step := range path {
		switch s := step.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return n
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == s {
					n, found = n.Content[i+1], true
					break
				}
			}
			if !found {
				return n
			}
		case int:
			if n.Kind != yaml.SequenceNode || s >= len(n.Content) {
				return n
			}
			n = n.Content[s]
		}
	}
	return n
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// DecodeStrict decodes one YAML document of file name into v (a pointer) with the checks of
// policy files: every field known, shapes and scalar types right, no anchors, errors as *Error
// with line and column. It returns the document's node, for NodeAt. Tools that read files next
// to policies (policy tests) use it.
func DecodeStrict(name string, src []byte, v any) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, yamlError(name, err)
	}
	n := &root
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if err := strictNode(n, reflect.TypeOf(v).Elem()); err != nil {
		return nil, locate(name, n, err)
	}
	if err := n.Decode(v); err != nil {
		return nil, locate(name, n, err)
	}
	return n, nil
}

// NodeAt follows a path of mapping keys (string) and sequence indexes (int) from n and returns
// the deepest node it reached, for errors that point at a field.
func NodeAt(n *yaml.Node, path ...any) *yaml.Node { return nodeAt(n, path...) }
