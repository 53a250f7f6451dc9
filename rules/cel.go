package rules

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	celcommon "github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/interpreter"
)

// The cost bounds of a `when` expression. CEL's cost is a count of elementary steps. The
// estimate at load assumes strings of at most estimatedStringSize characters and lists and maps
// of at most estimatedListSize entries (claims, headers): an expression whose estimated worst
// case exceeds MaxEstimatedCost is refused at load (nested loops over lists are). An expression
// with a comprehension (all, exists, exists_one, map, filter) is also metered on each request:
// past MaxRuntimeCost it stops, and denies. One without is linear in the size of what it reads,
// so it is not metered (metering costs allocations, and cel-go's meter grows quadratically
// with the iterations of a comprehension, which is why MaxRuntimeCost is low).
const (
	MaxEstimatedCost    = 100_000
	MaxRuntimeCost      = 10_000
	estimatedStringSize = 1024
	estimatedListSize   = 64
)

// variables are the names a `when` expression may use, with their CEL types.
var variableNames = []string{"claims", "roles", "scopes", "params", "request.method", "request.host",
	"request.path", "request.headers", "request.query", "source.address", "context", "now"}

// newCELEnv builds the environment `when` expressions are compiled in. It is built once per
// Compile, only when some rule has a `when`.
func newCELEnv() (*cel.Env, error) {
	strMap := cel.MapType(cel.StringType, cel.StringType)
	strList := cel.ListType(cel.StringType)
	return cel.NewEnv(
		cel.Variable("claims", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("roles", strList),
		cel.Variable("scopes", strList),
		cel.Variable("params", strMap),
		cel.Variable("request.method", cel.StringType),
		cel.Variable("request.host", cel.StringType),
		cel.Variable("request.path", cel.StringType),
		cel.Variable("request.headers", strMap),
		cel.Variable("request.query", strMap),
		cel.Variable("source.address", cel.StringType),
		cel.Variable("context", strMap),
		cel.Variable("now", cel.TimestampType),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Network(),
	)
}

// condition is one compiled `when`.
type condition struct {
	field string // "rules[3].require.any_of[1].when"
	expr  string
	prg   cel.Program
	refs  []varPath // the variables (and constant keys into them) it reads, for Outcome.Missing
	vars  varSet    // every variable it reads
}

// varSet is a set of variables, bit i standing for variableNames[i].
type varSet uint16

// varBit returns the bit of a variable, 0 for a name that is not one.
func varBit(name string) varSet {
	for i, n := range variableNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// readVars returns every variable a checked expression reads: the checker resolves each
// identifier, wherever it stands, to a declared variable (Value nil) or a constant.
func readVars(a *celast.AST) varSet {
	var set varSet
	for _, r := range a.ReferenceMap() {
		if r.Value == nil {
			set |= varBit(r.Name)
		}
	}
	return set
}

// varPath is a variable and the constant keys an expression selects in it: claims.tenant_id
// is {claims, [tenant_id]}; request.headers["x-tenant"] is {request.headers, [x-tenant]}.
type varPath struct {
	root string
	keys []string
}

func (v varPath) String() string {
	var b strings.Builder
	b.WriteString(v.root)
	for _, k := range v.keys {
		if validParamName(k) {
			b.WriteString("." + k)
		} else {
			b.WriteString("[" + strconv.Quote(k) + "]")
		}
	}
	return b.String()
}

// compileCondition compiles a `when` expression, returning the problem, phrased for the user,
// when it is refused.
func compileCondition(env *cel.Env, field, expr string) (*condition, string) {
	if strings.TrimSpace(expr) == "" {
		return nil, "empty expression; omit when, or write a CEL expression such as claims.tenant_id == params.tenant"
	}
	checked, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		return nil, celProblem(iss.Errors(), expr)
	}
	switch t := checked.OutputType(); {
	case t.IsExactType(types.BoolType), t.IsExactType(types.DynType):
	default:
		return nil, fmt.Sprintf("the expression gives a %s, not a boolean; compare it (for example request.method == \"GET\")", t)
	}
	est, err := env.EstimateCost(checked, sizeEstimator{})
	if err != nil {
		return nil, "cannot estimate the cost: " + err.Error()
	}
	if est.Max > MaxEstimatedCost {
		return nil, fmt.Sprintf("estimated cost %d exceeds the limit of %d (assuming lists and maps of up to %d entries and strings of up to %d characters); simplify it, for example avoid nested loops over lists",
			est.Max, MaxEstimatedCost, estimatedListSize, estimatedStringSize)
	}
	opts := []cel.ProgramOption{cel.EvalOptions(cel.OptOptimize)}
	if hasComprehension(checked.NativeRep().Expr()) {
		opts = append(opts, cel.CostLimit(MaxRuntimeCost))
	}
	prg, err := env.Program(checked, opts...)
	if err != nil {
		return nil, err.Error()
	}
	return &condition{field: field, expr: expr, prg: prg, refs: readPaths(checked.NativeRep()), vars: readVars(checked.NativeRep())}, ""
}

// celProblem turns CEL's errors into one line: where, then CEL's message, with a hint for an
// unknown name.
func celProblem(errs []*celcommon.Error, expr string) string {
	var parts []string
	hint := false
	for _, e := range errs {
		where := fmt.Sprintf("column %d", e.Location.Column()+1)
		if strings.Contains(expr, "\n") {
			where = fmt.Sprintf("line %d, column %d", e.Location.Line(), e.Location.Column()+1)
		}
		parts = append(parts, where+": "+e.Message)
		hint = hint || strings.HasPrefix(e.Message, "undeclared reference")
	}
	msg := strings.Join(parts, "; ")
	if hint {
		msg += "; the variables are " + strings.Join(variableNames, ", ")
	}
	return msg
}

// sizeEstimator bounds the sizes of variables for the load-time cost estimate.
type sizeEstimator struct{}

func (sizeEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	switch n.Type().Kind() {
	case types.ListKind, types.MapKind:
		return &checker.SizeEstimate{Min: 0, Max: estimatedListSize}
	}
	return &checker.SizeEstimate{Min: 0, Max: estimatedStringSize}
}

func (sizeEstimator) EstimateCallCost(string, string, *checker.AstNode, []checker.AstNode) *checker.CallEstimate {
	return nil
}

// hasComprehension reports whether an expression loops (the all, exists, exists_one, map and
// filter macros expand to comprehensions).
func hasComprehension(e celast.Expr) bool {
	found := false
	visit := celast.NewExprVisitor(func(e celast.Expr) {
		if e.Kind() == celast.ComprehensionKind {
			found = true
		}
	})
	celast.PostOrderVisit(e, visit)
	return found
}

// readPaths lists the variables an expression reads, each with the longest run of constant
// keys selected in it, each once, in order of appearance.
func readPaths(a *celast.AST) []varPath {
	refs := a.ReferenceMap()
	declared := map[string]bool{}
	for _, n := range variableNames {
		declared[n] = true
	}
	var out []varPath
	seen := map[string]bool{}
	var static func(e celast.Expr) (varPath, bool)
	static = func(e celast.Expr) (varPath, bool) {
		if r, ok := refs[e.ID()]; ok && r.Value == nil && declared[r.Name] {
			return varPath{root: r.Name}, true
		}
		switch e.Kind() {
		case celast.SelectKind:
			s := e.AsSelect()
			if p, ok := static(s.Operand()); ok {
				p.keys = append(append([]string(nil), p.keys...), s.FieldName())
				return p, true
			}
		case celast.CallKind:
			c := e.AsCall()
			if c.FunctionName() == operators.Index && len(c.Args()) == 2 && c.Args()[1].Kind() == celast.LiteralKind {
				if k, ok := c.Args()[1].AsLiteral().(types.String); ok {
					if p, ok := static(c.Args()[0]); ok {
						p.keys = append(append([]string(nil), p.keys...), string(k))
						return p, true
					}
				}
			}
		}
		return varPath{}, false
	}
	var walk func(e celast.Expr)
	walk = func(e celast.Expr) {
		if p, ok := static(e); ok {
			if s := p.String(); !seen[s] {
				seen[s] = true
				out = append(out, p)
			}
			return
		}
		switch e.Kind() {
		case celast.SelectKind:
			walk(e.AsSelect().Operand())
		case celast.CallKind:
			c := e.AsCall()
			if c.IsMemberFunction() {
				walk(c.Target())
			}
			for _, x := range c.Args() {
				walk(x)
			}
		case celast.ListKind:
			for _, x := range e.AsList().Elements() {
				walk(x)
			}
		case celast.MapKind:
			for _, en := range e.AsMap().Entries() {
				walk(en.AsMapEntry().Key())
				walk(en.AsMapEntry().Value())
			}
		case celast.ComprehensionKind:
			c := e.AsComprehension()
			walk(c.IterRange())
			walk(c.AccuInit())
			walk(c.LoopCondition())
			walk(c.LoopStep())
			walk(c.Result())
		}
	}
	walk(a.Expr())
	return out
}

// activation resolves the variables of a `when` from the principal and the input, lazily:
// nothing is built for a variable the expression does not read.
type activation struct {
	p  Principal
	in Input
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "claims":
		if a.p.Claims == nil {
			return map[string]any{}, true
		}
		return a.p.Claims, true
	case "roles":
		return stringList(a.p.Roles), true
	case "scopes":
		return stringList(a.p.Scopes), true
	case "params":
		return paramsVal{&a.in.Params}, true
	case "request.method":
		return a.in.method(), true
	case "request.host":
		return a.in.host(), true
	case "request.path":
		return a.in.Path, true
	case "request.headers":
		return stringMap(a.in.Headers), true
	case "request.query":
		return stringMap(a.in.Query), true
	case "source.address":
		return a.in.SourceAddress, true
	case "context":
		return stringMap(a.in.Context), true
	case "now":
		return a.in.Now, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

func stringList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

func stringMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// paramsVal presents Params to CEL as a map(string, string) without building a map.
type paramsVal struct{ p *Params }

var _ traits.Mapper = paramsVal{}

func (v paramsVal) toMap() map[string]string {
	m := make(map[string]string, v.p.Len())
	for i := 0; i < v.p.Len(); i++ {
		q := v.p.At(i)
		m[q.Name] = decodeSegment(q.Value)
	}
	return m
}

func (v paramsVal) asCEL() traits.Mapper {
	return types.NewStringStringMap(types.DefaultTypeAdapter, v.toMap())
}

func (v paramsVal) ConvertToNative(t reflect.Type) (any, error) { return v.asCEL().ConvertToNative(t) }
func (v paramsVal) ConvertToType(t ref.Type) ref.Val            { return v.asCEL().ConvertToType(t) }
func (v paramsVal) Equal(other ref.Val) ref.Val                 { return v.asCEL().Equal(other) }
func (v paramsVal) Type() ref.Type                              { return types.MapType }
func (v paramsVal) Value() any                                  { return v.toMap() }
func (v paramsVal) Iterator() traits.Iterator                   { return v.asCEL().Iterator() }
func (v paramsVal) Size() ref.Val                               { return types.Int(v.p.Len()) }

func (v paramsVal) Contains(key ref.Val) ref.Val {
	_, found := v.Find(key)
	return types.Bool(found)
}

func (v paramsVal) Get(key ref.Val) ref.Val {
	val, found := v.Find(key)
	if !found {
		if val != nil {
			return val
		}
		return types.NewErr("no such key: %v", key)
	}
	return val
}

func (v paramsVal) Find(key ref.Val) (ref.Val, bool) {
	k, ok := key.(types.String)
	if !ok {
		return types.MaybeNoSuchOverloadErr(key), false
	}
	s, found := v.p.Get(string(k))
	if !found {
		return nil, false
	}
	return types.String(s), true
}

// eval evaluates the condition. A result that is not a boolean is an error.
func (c *condition) eval(a *activation) (bool, error) {
	val, _, err := c.prg.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := val.(types.Bool)
	if !ok {
		return false, fmt.Errorf("the expression gave a %s, not a boolean", val.Type().TypeName())
	}
	return bool(b), nil
}

// saw describes the values the condition read, for Outcome.Missing: `claims.tenant_id =
// "acme", params.tenant = "globex"`. Secret headers are never shown.
func (c *condition) saw(a *activation) string {
	parts := make([]string, 0, len(c.refs))
	for _, p := range c.refs {
		parts = append(parts, p.String()+" "+describeValue(a, p))
	}
	return strings.Join(parts, ", ")
}

// maxShown bounds the text shown for one value.
const maxShown = 200

func describeValue(a *activation, p varPath) string {
	if p.root == "request.headers" {
		if len(p.keys) == 0 {
			names := make([]string, 0, len(a.in.Headers))
			for k := range a.in.Headers {
				names = append(names, k)
			}
			sort.Strings(names)
			return "has " + truncate(strings.Join(names, ", "))
		}
		if a.in.secretHeader(p.keys[0]) {
			if _, ok := a.in.Headers[p.keys[0]]; ok {
				return "= (not shown)"
			}
			return "absent"
		}
	}
	v, _ := a.ResolveName(p.root)
	for _, k := range p.keys {
		var ok bool
		switch m := v.(type) {
		case map[string]any:
			v, ok = m[k]
		case map[string]string:
			v, ok = m[k]
		case paramsVal:
			v, ok = m.p.Get(k)
		}
		if !ok {
			return "absent"
		}
	}
	if pv, ok := v.(paramsVal); ok {
		v = pv.toMap()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "= " + truncate(fmt.Sprint(v))
	}
	return "= " + truncate(string(b))
}

func truncate(s string) string {
	if len(s) <= maxShown {
		return s
	}
	cut := maxShown
	for cut > 0 && s[cut]&0xC0 == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
