package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestOverviewListsEveryKey: the skeleton under "## Overview" in docs/configuration.md names
// every key the file accepts (the yaml tags of Config, followed into sections and lists), as
// `key:` or as a comment `# key:` for a section that is absent by default. A key written
// `key: {}` stands for its section: what is inside it is documented further down.
func TestOverviewListsEveryKey(t *testing.T) {
	listed, collapsed := overviewKeys(t, "../docs/configuration.md")
	// Accepted only to be refused with a clear message, never to be written.
	refused := map[string]bool{"issuers.introspection.client_secret": true}
	var missing []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ == reflect.TypeOf(time.Duration(0)) {
			return
		}
		for i := range typ.NumField() {
			name, _, _ := strings.Cut(typ.Field(i).Tag.Get("yaml"), ",")
			if name == "" || name == "-" {
				continue
			}
			path := prefix + name
			switch {
			case refused[path]:
			case !listed[path]:
				missing = append(missing, path)
			case !collapsed[path]:
				walk(path+".", typ.Field(i).Type)
			}
		}
	}
	walk("", reflect.TypeOf(Config{}))
	if len(missing) > 0 {
		t.Errorf("docs/configuration.md's overview does not list %s", strings.Join(missing, ", "))
	}
}

// overviewKeys reads the key paths of the first yaml block after "## Overview" (list items
// add no step: issuers.audiences), and those written as `key: {}`.
func overviewKeys(t *testing.T, path string) (listed, collapsed map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n## Overview\n")
	if !ok {
		t.Fatalf("%s has no ## Overview", path)
	}
	_, rest, _ = strings.Cut(rest, "```yaml\n")
	block, _, _ := strings.Cut(rest, "```")
	line := regexp.MustCompile(`^( *)(?:# )?((?:- )?)([a-z0-9_]+):(.*)$`)
	listed, collapsed = map[string]bool{}, map[string]bool{}
	type level struct {
		indent int
		name   string
	}
	var stack []level
	for _, l := range strings.Split(block, "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		indent := len(m[1]) + len(m[2])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		names := []string{}
		for _, s := range stack {
			names = append(names, s.name)
		}
		key := strings.Join(append(names, m[3]), ".")
		listed[key] = true
		value, _, _ := strings.Cut(m[4], "#")
		if strings.TrimSpace(value) == "{}" {
			collapsed[key] = true
		}
		stack = append(stack, level{indent, m[3]})
	}
	return listed, collapsed
}
