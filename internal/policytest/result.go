package policytest

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/portcullis-authz/portcullis/authz"
)

// Result is the outcome of one case. On failure, Expected and Got hold the fields that
// differ, by the name of the expect field: what the file expects, and what the engine answered
// (for headers, the values of the expected headers, null when not set; for removed, the
// decision's whole removal list).
type Result struct {
	File     string         `json:"file"`
	Name     string         `json:"name"`
	Passed   bool           `json:"passed"`
	Expected map[string]any `json:"expected,omitempty"`
	Got      map[string]any `json:"got,omitempty"`
	// Detail is the decision's precise cause, on failure (never the token).
	Detail string `json:"detail,omitempty"`

	expected, got []string // the FAIL line's parts
}

// Line is the text report of the result: `PASS name`, or
// `FAIL name: expected status 403, reason forbidden; got status 200, reason ok (detail)`.
func (r *Result) Line() string {
	if r.Passed {
		return "PASS " + r.Name
	}
	line := fmt.Sprintf("FAIL %s: expected %s; got %s", r.Name, strings.Join(r.expected, ", "), strings.Join(r.got, ", "))
	if r.Detail != "" {
		line += " (" + r.Detail + ")"
	}
	return line
}

// compare checks decision d against the case's expectations.
func compare(file string, c *Case, d *authz.Decision) Result {
	r := Result{File: file, Name: c.Name}
	differ := func(key string, want, got any, wantText, gotText string) {
		if r.Expected == nil {
			r.Expected, r.Got = map[string]any{}, map[string]any{}
		}
		r.Expected[key], r.Got[key] = want, got
		r.expected, r.got = append(r.expected, wantText), append(r.got, gotText)
	}
	e := c.Expect
	decision := "deny"
	if d.Allow {
		decision = "allow"
	}
	if e.Decision != nil && *e.Decision != decision {
		differ("decision", *e.Decision, decision, "decision "+*e.Decision, "decision "+decision)
	}
	if e.Status != nil && *e.Status != d.Status {
		differ("status", *e.Status, d.Status, fmt.Sprintf("status %d", *e.Status), fmt.Sprintf("status %d", d.Status))
	}
	if e.Rule != nil && *e.Rule != d.Rule {
		differ("rule", *e.Rule, d.Rule, "rule "+ruleText(*e.Rule), "rule "+ruleText(d.Rule))
	}
	if e.Reason != nil && *e.Reason != string(d.Reason) {
		differ("reason", *e.Reason, string(d.Reason), "reason "+*e.Reason, "reason "+string(d.Reason))
	}
	if len(e.Headers) > 0 {
		// The headers of what was served: set upstream on an allow, sent to the client on a deny.
		served := d.Upstream
		if !d.Allow {
			served = d.Answer
		}
		want, got := map[string]any{}, map[string]any{}
		var wantText, gotText []string
		for _, name := range slices.Sorted(maps.Keys(e.Headers)) {
			value, set := header(served, name)
			if set && value == e.Headers[name] {
				continue
			}
			want[name] = e.Headers[name]
			wantText = append(wantText, fmt.Sprintf("header %s %q", name, e.Headers[name]))
			if set {
				got[name] = value
				gotText = append(gotText, fmt.Sprintf("header %s %q", name, value))
			} else {
				got[name] = nil
				gotText = append(gotText, fmt.Sprintf("header %s not set", name))
			}
		}
		if len(want) > 0 {
			differ("headers", want, got, strings.Join(wantText, ", "), strings.Join(gotText, ", "))
		}
	}
	var kept []string
	for _, name := range e.Removed {
		if !slices.ContainsFunc(d.UpstreamRemove, func(h string) bool { return strings.EqualFold(h, name) }) {
			kept = append(kept, name)
		}
	}
	if len(kept) > 0 {
		removed := d.UpstreamRemove
		if removed == nil {
			removed = []string{}
		}
		gotText := make([]string, len(kept))
		for i, name := range kept {
			gotText[i] = name + " not removed"
		}
		differ("removed", kept, removed, "removed "+strings.Join(kept, ", "), strings.Join(gotText, ", "))
	}
	r.Passed = r.Expected == nil
	if !r.Passed {
		r.Detail = d.Detail
	}
	return r
}

// header finds the header name (case-insensitive) among set.
func header(set []authz.Header, name string) (string, bool) {
	for _, h := range set {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

func ruleText(name string) string {
	if name == "" {
		return "(none)"
	}
	return fmt.Sprintf("%q", name)
}
