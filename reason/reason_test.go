package reason

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestEveryConstantHasARow: each Code constant declared in this package is a row of the table,
// exactly once, so a reason added without its row (or a row added twice) fails here.
func TestEveryConstantHasARow(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "reason.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []Code
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			v := spec.(*ast.ValueSpec)
			if id, ok := v.Type.(*ast.Ident); !ok || id.Name != "Code" {
				continue
			}
			for _, val := range v.Values {
				s, err := strconv.Unquote(val.(*ast.BasicLit).Value)
				if err != nil {
					t.Fatal(err)
				}
				declared = append(declared, Code(s))
			}
		}
	}
	if got := Codes(); !slices.Equal(got, declared) {
		t.Errorf("table codes %q\ndeclared     %q", got, declared)
	}
}

// TestTableRows: the invariants every row keeps, whatever reasons are added.
func TestTableRows(t *testing.T) {
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	// A description goes unescaped into a quoted-string of WWW-Authenticate (RFC 9110 §5.6.4)
	// and into JSON: printable ASCII without `"` or `\`.
	plain := regexp.MustCompile(`^[ !#-\[\]-~]*$`)
	seen := map[Code]bool{}
	for _, a := range All() {
		if !snake.MatchString(string(a.Code)) || seen[a.Code] {
			t.Errorf("%q: not snake_case, or listed twice", a.Code)
		}
		seen[a.Code] = true
		if a.Code.String() != string(a.Code) {
			t.Errorf("%s: label %q", a.Code, a.Code.String())
		}
		if got, ok := Of(a.Code); !ok || got != a {
			t.Errorf("Of(%s) = %+v, %v", a.Code, got, ok)
		}
		if !plain.MatchString(a.Description) {
			t.Errorf("%s: description %q needs escaping", a.Code, a.Description)
		}
		if a.Allow() {
			if a.Status != 200 || a.Error != "" || a.Description != "" || a.Challenge != ChallengeNone || a.TokenRefusal {
				t.Errorf("%s: an allow with deny facts: %+v", a.Code, a)
			}
			continue
		}
		if a.Status < 400 || a.Status > 599 || !snake.MatchString(a.Error) || a.Description == "" {
			t.Errorf("%s: a deny without status, error or description: %+v", a.Code, a)
		}
		// RFC 6750 §3.1: invalid_token with 401, insufficient_scope with 403, no error code when
		// no credentials were sent.
		switch a.Challenge {
		case ChallengeBare, ChallengeInvalidToken:
			if a.Status != 401 {
				t.Errorf("%s: a 401 challenge on %d", a.Code, a.Status)
			}
		case ChallengeInsufficientScope:
			if a.Status != 403 || a.Error != "insufficient_scope" {
				t.Errorf("%s: insufficient_scope challenge on %d %s", a.Code, a.Status, a.Error)
			}
		}
	}
	if _, ok := Of("teapot"); ok {
		t.Error("Of knows a code outside the table")
	}
	all := All()
	all[0].Status = 500
	if a, _ := Of(all[0].Code); a.Status == 500 {
		t.Error("All hands out the table itself")
	}
}

// docTable returns the cells of the Markdown table under the heading, one row a slice, with the
// header and separator rows left out.
func docTable(t *testing.T, file, heading string) [][]string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("%s: no heading %q", file, heading)
	}
	var rows [][]string
	in := false
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "|") {
			if in {
				break
			}
			continue
		}
		in = true
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	if len(rows) < 2 {
		t.Fatalf("%s: no table under %q", file, heading)
	}
	return rows[2:]
}

func unquote(cell string) string {
	if cell == "—" {
		return ""
	}
	return strings.Trim(cell, "`")
}

// TestTableIsDocumented: docs/decisions.md's table of reasons and its WWW-Authenticate table,
// and the reason label values of docs/metrics.md, say what this table says, row by row.
func TestTableIsDocumented(t *testing.T) {
	rows := docTable(t, "../docs/decisions.md", "## Reasons")
	all := All()
	if len(rows) != len(all) {
		t.Errorf("docs/decisions.md lists %d reasons, the table %d", len(rows), len(all))
	}
	for i, r := range rows {
		if i >= len(all) || len(r) < 4 {
			break
		}
		a := all[i]
		status, _ := strconv.Atoi(r[1])
		if got := (Answer{Code(unquote(r[0])), status, unquote(r[2]), unquote(r[3]), a.Challenge, a.TokenRefusal}); got != a {
			t.Errorf("docs/decisions.md row %d: %+v\ntable: %+v", i+1, got, a)
		}
	}
	// | 401 `no_token` | bare | 401 `invalid_dpop_proof` | DPoP | any other 401 | invalid_token |
	// 403 `insufficient_scope` | … | 400, other 403, 503 | none |
	challenges := docTable(t, "../docs/decisions.md", "## `WWW-Authenticate`")
	if len(challenges) != 5 || challenges[0][0] != "401 `no_token`" || challenges[1][0] != "401 `invalid_dpop_proof`" ||
		challenges[2][0] != "any other 401" || challenges[3][0] != "403 `insufficient_scope`" ||
		challenges[4][0] != "400, other 403, 503" || challenges[4][1] != "none" {
		t.Fatalf("docs/decisions.md's WWW-Authenticate table changed; update this test with it: %q", challenges)
	}
	for _, a := range all {
		want := ChallengeNone
		switch {
		case a.Code == NoToken:
			want = ChallengeBare
		case a.Code == InvalidDPoPProof:
			want = ChallengeInvalidDPoPProof
		case a.Status == 401:
			want = ChallengeInvalidToken
		case a.Code == InsufficientScope:
			want = ChallengeInsufficientScope
		}
		if a.Challenge != want {
			t.Errorf("%s: challenge %d, docs/decisions.md says %d", a.Code, a.Challenge, want)
		}
	}

	labels := docTable(t, "../docs/metrics.md", "Label values:")
	var listed []Code
	for _, r := range labels {
		if r[0] != "`reason`" {
			continue
		}
		values, _, _ := strings.Cut(r[1], " — ")
		for _, v := range strings.Split(values, ",") {
			listed = append(listed, Code(unquote(strings.TrimSpace(v))))
		}
	}
	if got := Codes(); !slices.Equal(listed, got) {
		t.Errorf("docs/metrics.md reason label values %q\ntable %q", listed, got)
	}
}
