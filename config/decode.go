package config

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

var durationType = reflect.TypeOf(time.Duration(0))

// written records the keys a file sets, by field path (`issuers[0].leeway`), so that defaults
// are given to the others only (applyDefaults). A key set to null counts as written only for a
// list, where null means the empty list; a null single value, section or mapping keeps its
// default.
type written map[string]bool

// decode is the strict decode: it walks the YAML document against the Go type of out and sets
// every value it holds, parsing each scalar once. Every unknown key, key given twice, wrong
// shape or unparsable scalar is reported with its field path and line
// (`issuers[0].leeway: "30" is not a duration (line 5); write it with a unit, e.g. 30s`), all
// together, instead of yaml's line-only messages. out is left partly set when there is an error.
func decode(data []byte, out any) (written, error) {
	w, problems, _, err := decodeAll(data, out)
	if err != nil {
		return nil, err
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	return w, nil
}

// decodeAll is decode that keeps going: it returns what was written, every problem, and the
// field paths the problems are at ("" for the whole document), so that the later checks can
// run on what could be read and report their own problems in the same pass. err is set only
// when there is no document to walk (not YAML, or empty).
func decodeAll(data []byte, out any) (w written, problems []error, failed []string, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, nil, nil, errors.New("the file is empty")
	}
	d := &decoder{written: written{}}
	d.value(doc.Content[0], reflect.ValueOf(out).Elem(), "")
	return d.written, d.errs, d.failed, nil
}

type decoder struct {
	errs    []error
	failed  []string // the field path of each error
	written written
}

// fail records a problem; its first argument is always the field path it is at.
func (d *decoder) fail(format string, args ...any) {
	d.errs = append(d.errs, fmt.Errorf(format, args...))
	at, _ := args[0].(string)
	if at == "the document" {
		at = ""
	}
	d.failed = append(d.failed, at)
}

// covered drops the problems found after decoding at a field path where decoding failed
// (the path itself or below it): the value there is the default or empty because it could not
// be read, and its decoding problem says so already.
func covered(problems, failed []string) []string {
	var out []string
	for _, p := range problems {
		at, _, _ := strings.Cut(p, ": ")
		drop := false
		for _, f := range failed {
			if f == "" || at == f || strings.HasPrefix(at, f+".") || strings.HasPrefix(at, f+"[") {
				drop = true
				break
			}
		}
		if !drop {
			out = append(out, p)
		}
	}
	return out
}

// nearest is the known key most like key, for an unknown one ("audience" → "audiences"): at
// most two edits away, and fewer than half of key's length; "" when none is.
func nearest(key string, known []string) string {
	best, bestDist := "", 3
	for _, k := range known {
		d := editDistance(strings.ToLower(key), k)
		if d < bestDist && 2*d < len(key) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes; keys are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func joinPath(base, key string) string {
	if base == "" {
		return key
	}
	return base + "." + key
}

// value decodes node into v (settable), at path.
func (d *decoder) value(node *yaml.Node, v reflect.Value, path string) {
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		if v.Kind() == reflect.Slice {
			d.written[path] = true // null is the empty list
			v.Set(reflect.Zero(v.Type()))
		}
		return // an explicit null keeps the default
	}
	d.written[path] = true
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	where := path
	if where == "" {
		where = "the document"
	}
	if v.Type() == durationType {
		if node.Kind != yaml.ScalarNode {
			d.fail("%s: expected a duration such as 30s (line %d)", where, node.Line)
			return
		}
		dur, err := time.ParseDuration(node.Value)
		switch {
		case err != nil:
			d.fail("%s: %q is not a duration (line %d); write it with a unit, e.g. 30s or 15m", where, node.Value, node.Line)
		case dur < 0:
			d.fail("%s: %s is negative (line %d)", where, node.Value, node.Line)
		default:
			v.SetInt(int64(dur))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			d.fail("%s: expected a mapping of keys to values (line %d)", where, node.Line)
			return
		}
		t := v.Type()
		fields := map[string]int{}
		var known []string
		for i := 0; i < t.NumField(); i++ {
			name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = i
			known = append(known, name)
		}
		d.entries(node, path, func(k, val *yaml.Node) {
			i, ok := fields[k.Value]
			if !ok {
				guess := ""
				if near := nearest(k.Value, known); near != "" {
					guess = " did you mean " + near + "?"
				}
				d.fail("%s: unknown key (line %d);%s known keys here: %s", joinPath(path, k.Value), k.Line, guess, strings.Join(known, ", "))
				return
			}
			d.value(val, v.Field(i), joinPath(path, k.Value))
		})
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			d.fail("%s: expected a list (line %d)", where, node.Line)
			return
		}
		s := reflect.MakeSlice(v.Type(), len(node.Content), len(node.Content))
		for i, item := range node.Content {
			d.value(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if node.Kind != yaml.MappingNode {
			d.fail("%s: expected a mapping (line %d)", where, node.Line)
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(node.Content)/2)
		d.entries(node, path, func(k, val *yaml.Node) {
			elem := reflect.New(v.Type().Elem()).Elem()
			d.value(val, elem, joinPath(path, k.Value))
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
		})
		v.Set(m)
	case reflect.Interface:
		// Free-form values (claim requirements) are decoded as YAML has them and checked by
		// their owner.
		var x any
		if err := node.Decode(&x); err != nil {
			d.fail("%s: %v (line %d)", where, err, node.Line)
			return
		}
		if x != nil {
			v.Set(reflect.ValueOf(x))
		}
	case reflect.Bool:
		var b bool
		if node.Kind != yaml.ScalarNode || node.Tag != "!!bool" || node.Decode(&b) != nil {
			d.fail("%s: expected true or false, got %q (line %d)", where, node.Value, node.Line)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		if node.Kind != yaml.ScalarNode {
			d.fail("%s: expected a whole number (line %d)", where, node.Line)
			return
		}
		n, err := strconv.Atoi(node.Value)
		if err != nil || node.Tag != "!!int" {
			d.fail("%s: expected a whole number, got %q (line %d)", where, node.Value, node.Line)
			return
		}
		v.SetInt(int64(n))
	case reflect.Float64:
		var f float64
		if node.Kind != yaml.ScalarNode || (node.Tag != "!!float" && node.Tag != "!!int") || node.Decode(&f) != nil {
			d.fail("%s: expected a number, got %q", where, node.Value)
			return
		}
		v.SetFloat(f)
	case reflect.String:
		if node.Kind != yaml.ScalarNode {
			d.fail("%s: expected a single value, not a list or mapping (line %d)", where, node.Line)
			return
		}
		v.SetString(node.Value)
	default:
		d.fail("%s: cannot be decoded into %s (line %d)", where, v.Type(), node.Line)
	}
}

// entries calls fn for every key and value of a mapping node, reporting a key that is not a
// single value, and a key given twice (YAML parsers disagree on which copy wins, so it is
// refused).
func (d *decoder) entries(node *yaml.Node, path string, fn func(k, v *yaml.Node)) {
	seen := map[string]bool{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail("%s: a key must be a single value, not a list or mapping (line %d)", joinPath(path, "?"), k.Line)
			continue
		}
		if seen[k.Value] {
			d.fail("%s: key given twice (line %d)", joinPath(path, k.Value), k.Line)
			continue
		}
		seen[k.Value] = true
		fn(k, v)
	}
}

// normalise is the last step of decoding: file paths are made absolute against baseDir (the
// configuration file's directory) and header names lower-cased, so that validation and
// everything after it see one spelling. Two identity headers that differ only in letter case
// are a problem of the file and are reported.
func (c *Config) normalise(baseDir string) []string {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) && baseDir != "" {
			*p = filepath.Join(baseDir, *p)
		}
	}
	abs(&c.Server.TLS.CertFile)
	abs(&c.Server.TLS.KeyFile)
	abs(&c.Server.TLS.ClientCAFile)
	abs(&c.JWKSCacheDir)
	if c.Tracing != nil {
		abs(&c.Tracing.CAFile)
	}
	for i := range c.Issuers {
		abs(&c.Issuers[i].JWKSFile)
		abs(&c.Issuers[i].CAFile)
		abs(&c.Issuers[i].ClientCertFile)
		abs(&c.Issuers[i].ClientKeyFile)

		if in := c.Issuers[i].Introspection; in != nil {
			abs(&in.ClientSecretFile)
		}
	}
	for i := range c.Tokens.Sources {
		c.Tokens.Sources[i].Header = strings.ToLower(c.Tokens.Sources[i].Header)
	}
	var problems []string
	names := slices.Sorted(maps.Keys(c.IdentityHeaders))
	lower := make(map[string]string, len(names))
	for _, name := range names {
		l := strings.ToLower(name)
		if _, dup := lower[l]; dup {
			problems = append(problems, fmt.Sprintf("identity_headers.%s: header given twice (header names are case-insensitive)", name))
			continue
		}
		lower[l] = c.IdentityHeaders[name]
	}
	if c.IdentityHeaders != nil {
		c.IdentityHeaders = lower
	}
	return problems
}
