package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var durationType = reflect.TypeOf(time.Duration(0))

// decodeStrict decodes YAML into out after checking the document's shape against out's type, so
// that every unknown key, wrong shape or unparsable scalar is reported with its field path
// (`issuers[0].leeway: "30" is not a duration; write it with a unit, e.g. 30s`) instead of
// yaml's line-only messages.
func decodeStrict(data []byte, out any) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("not valid YAML: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return errors.New("the file is empty")
	}
	root := doc.Content[0]
	var errs []error
	checkShape(root, reflect.TypeOf(out).Elem(), "", &errs)
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("not valid configuration: %w", err)
	}
	return nil
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// checkShape walks node against the Go type t and appends one error per problem found.
func checkShape(node *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return // an explicit null keeps the default
	}
	where := path
	if where == "" {
		where = "the document"
	}
	switch {
	case t == durationType:
		if node.Kind != yaml.ScalarNode {
			*errs = append(*errs, fmt.Errorf("%s: expected a duration such as 30s", where))
			return
		}
		d, err := time.ParseDuration(node.Value)
		if err != nil {
			*errs = append(*errs, fmt.Errorf("%s: %q is not a duration; write it with a unit, e.g. 30s or 15m", where, node.Value))
			return
		}
		if d < 0 {
			*errs = append(*errs, fmt.Errorf("%s: %s is negative", where, node.Value))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			*errs = append(*errs, fmt.Errorf("%s: expected a mapping of keys to values (line %d)", where, node.Line))
			return
		}
		fields := map[string]reflect.StructField{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f
			known = append(known, name)
		}
		eachEntry(node, path, errs, func(k, v *yaml.Node) {
			f, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, fmt.Errorf("%s: unknown key (line %d); known keys here: %s", joinPath(path, k.Value), k.Line, strings.Join(known, ", ")))
				return
			}
			checkShape(v, f.Type, joinPath(path, k.Value), errs)
		})
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			*errs = append(*errs, fmt.Errorf("%s: expected a list (line %d)", where, node.Line))
			return
		}
		for i, item := range node.Content {
			checkShape(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
		}
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			*errs = append(*errs, fmt.Errorf("%s: expected a mapping (line %d)", where, node.Line))
			return
		}
		eachEntry(node, path, errs, func(k, v *yaml.Node) {
			checkShape(v, t.Elem(), joinPath(path, k.Value), errs)
		})
	case reflect.Interface:
		// Free-form values (claim requirements) are checked by their owner.
	case reflect.Bool:
		if node.Kind != yaml.ScalarNode || node.Tag != "!!bool" {
			*errs = append(*errs, fmt.Errorf("%s: expected true or false, got %q", where, node.Value))
		}
	case reflect.Int, reflect.Int64:
		if node.Kind != yaml.ScalarNode {
			*errs = append(*errs, fmt.Errorf("%s: expected a whole number", where))
			return
		}
		if _, err := strconv.Atoi(node.Value); err != nil || node.Tag != "!!int" {
			*errs = append(*errs, fmt.Errorf("%s: expected a whole number, got %q", where, node.Value))
		}
	case reflect.String:
		if node.Kind != yaml.ScalarNode {
			*errs = append(*errs, fmt.Errorf("%s: expected a single value, not a list or mapping (line %d)", where, node.Line))
		}
	}
}

// eachEntry calls fn for every key and value of a mapping node, reporting a key given twice
// (YAML parsers disagree on which copy wins, so it is refused).
func eachEntry(node *yaml.Node, path string, errs *[]error, fn func(k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		if seen[k.Value] {
			*errs = append(*errs, fmt.Errorf("%s: key given twice (line %d)", joinPath(path, k.Value), k.Line))
			continue
		}
		seen[k.Value] = true
		fn(k, v)
	}
}
