package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"google.golang.org/genproto/googleapis/rpc/code"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/portcullis-authz/portcullis/internal/devidp"
	"github.com/portcullis-authz/portcullis/server"
)

const (
	rulesFile     = "alerts/portcullis-rules.yaml"
	dashboardFile = "dashboards/portcullis.json"
)

// The alerts issue 8 asks for.
var wantAlerts = []string{
	"PortcullisCheckLatencyHigh", "PortcullisConfigReloadFailing", "PortcullisDenyRateSpike", "PortcullisFailingClosed",
	"PortcullisJWKSKeySetStale", "PortcullisJWKSRefreshFailing", "PortcullisNoReadyReplicas",
}

// Labels Prometheus attaches to every scraped series (the Prometheus Operator adds namespace
// and pod), and the histogram bucket label.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "endpoint", "container"}

func TestMonitoringOverlay(t *testing.T) {
	objs := render(t, "overlays/monitoring")
	assertIncludesBase(t, "overlays/monitoring", objs)
	svc := one[*corev1.Service](t, objs, name)

	sm := one[*monitoringv1.ServiceMonitor](t, objs, name)
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", sm.Spec.Selector, svc.Labels)
	}
	if sm.Namespace != svc.Namespace && !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Namespace) {
		t.Errorf("ServiceMonitor in %s does not look in the Service's namespace %s", sm.Namespace, svc.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("%d endpoints, want 1", len(sm.Spec.Endpoints))
	}
	ep := sm.Spec.Endpoints[0]
	if ep.Port != "http-admin" || ep.Path != "/metrics" {
		t.Errorf("ServiceMonitor scrapes port %q path %q, want http-admin /metrics", ep.Port, ep.Path)
	}
	if sm.Spec.JobLabel != "" {
		t.Errorf("jobLabel %q: the rules and dashboard expect job=%q (the Service name)", sm.Spec.JobLabel, svc.Name)
	}
	if svc.Name != "portcullis" {
		t.Errorf("Service %q: the rules select job=\"portcullis\"", svc.Name)
	}

	pr := one[*monitoringv1.PrometheusRule](t, objs, name)
	if want := ruleFile(t); !reflect.DeepEqual(pr.Spec, want) {
		got, _ := json.MarshalIndent(pr.Spec, "", " ")
		exp, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("the PrometheusRule's groups differ from %s; edit both together\n got %s\nwant %s", rulesFile, got, exp)
	}
}

// ruleFile decodes the plain Prometheus rule file strictly. Its format is the one the
// Prometheus Operator's PrometheusRuleSpec mirrors, so that type checks every field name.
func ruleFile(t *testing.T) monitoringv1.PrometheusRuleSpec {
	t.Helper()
	var spec monitoringv1.PrometheusRuleSpec
	strictYAML(t, rulesFile, readFile(t, rulesFile), &spec)
	if len(spec.Groups) == 0 {
		t.Fatalf("%s: no rule groups", rulesFile)
	}
	return spec
}

// promTemplate mirrors how Prometheus expands alert annotations: these variables are defined
// first, and these functions exist (a parse needs only their names).
const templateDefs = `{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}`

var templateFuncs = template.FuncMap{}

func init() {
	for _, f := range []string{"humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp",
		"query", "first", "label", "value", "strvalue", "args", "reReplaceAll", "safeHtml", "match", "title", "toUpper",
		"toLower", "graphLink", "tableLink", "sortByLabel", "stripPort", "stripDomain", "parseDuration", "externalURL",
		"pathPrefix", "toTime", "toDuration", "now"} {
		templateFuncs[f] = func(...any) any { return nil }
	}
}

var labelRef = regexp.MustCompile(`\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)`)

func TestAlertRules(t *testing.T) {
	ex := scrape(t)
	spec := ruleFile(t)
	p := parser.NewParser(parser.Options{})
	recorded := recordedNames(spec)
	alerts := map[string]bool{}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			expr := r.Expr.String()
			id := r.Alert + r.Record
			if (r.Alert == "") == (r.Record == "") {
				t.Errorf("group %s: a rule must be exactly one of alert or record: %+v", g.Name, r)
				continue
			}
			e, err := p.ParseExpr(expr)
			if err != nil {
				t.Errorf("%s: expr does not parse: %v\n%s", id, err, expr)
				continue
			}
			if r.For != nil {
				if _, err := model.ParseDuration(string(*r.For)); err != nil {
					t.Errorf("%s: for %q: %v", id, *r.For, err)
				}
			}
			if r.Record != "" {
				if !strings.Contains(r.Record, ":") {
					t.Errorf("recording rule %s: name it level:metric:operations", r.Record)
				}
				continue
			}
			if alerts[r.Alert] {
				t.Errorf("alert %s defined twice", r.Alert)
			}
			alerts[r.Alert] = true
			if sev := r.Labels["severity"]; sev != "critical" && sev != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, sev)
			}
			outLabels := labelsIn(e, ex)
			for _, k := range []string{"summary", "description"} {
				text, ok := r.Annotations[k]
				if !ok || strings.TrimSpace(text) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, k)
					continue
				}
				if _, err := template.New(k).Funcs(templateFuncs).Parse(templateDefs + text); err != nil {
					t.Errorf("%s: %s does not parse as a template: %v", r.Alert, k, err)
				}
				for _, m := range labelRef.FindAllStringSubmatch(text, -1) {
					if !outLabels[m[1]] && !slices.Contains(targetLabels, m[1]) {
						t.Errorf("%s: %s refers to $labels.%s, which the expression never carries", r.Alert, k, m[1])
					}
				}
			}
			checkLabelsUsed(t, r.Alert, e, ex, recorded)
		}
	}
	for _, a := range wantAlerts {
		if !alerts[a] {
			t.Errorf("alert %s missing", a)
		}
	}
}

// TestStaleAlertFollowsRefreshInterval: the stale-key alert fires at twice the refresh interval
// of the shipped configuration.
func TestStaleAlertFollowsRefreshInterval(t *testing.T) {
	cfg := embeddedConfig(t, render(t, "base"))
	var longest time.Duration
	for _, is := range cfg.Issuers {
		longest = max(longest, is.RefreshInterval)
	}
	var threshold float64
	found := false
	for _, g := range ruleFile(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "PortcullisJWKSKeySetStale" {
				continue
			}
			e, err := parser.NewParser(parser.Options{}).ParseExpr(r.Expr.String())
			if err != nil {
				t.Fatal(err)
			}
			be, ok := e.(*parser.BinaryExpr)
			if !ok || be.Op != parser.GTR {
				t.Fatalf("PortcullisJWKSKeySetStale: want `age > seconds`, got %s", e)
			}
			n, ok := be.RHS.(*parser.NumberLiteral)
			if !ok {
				t.Fatalf("PortcullisJWKSKeySetStale: the threshold %s is not a number", be.RHS)
			}
			threshold, found = n.Val, true
		}
	}
	if !found {
		t.Fatal("no PortcullisJWKSKeySetStale alert")
	}
	if want := 2 * longest.Seconds(); threshold != want {
		t.Errorf("stale threshold %vs, want twice refresh_interval %v = %vs", threshold, longest, want)
	}
}

// dashboard is the part of a Grafana dashboard these tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int               `json:"id"`
	Type       string            `json:"type"`
	Title      string            `json:"title"`
	Datasource map[string]string `json:"datasource"`
	Targets    []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		RefID        string `json:"refId"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readFile(t, dashboardFile), &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// grafanaVars stands in for Grafana's variables so that an expression parses as PromQL.
var grafanaVars = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m", "$__interval", "1m", "$__range", "1h",
	"${job}", "portcullis", "$job", "portcullis", "${namespace}", "portcullis", "$namespace", "portcullis",
)

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$`)
var legendRef = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// dashboardExprs returns every PromQL expression of the dashboard (panel targets and the
// selectors inside label_values variable queries), keyed by where it is.
func dashboardExprs(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	exprs := map[string]string{}
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		if v.Type != "query" {
			continue
		}
		m := labelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q)
			continue
		}
		exprs["variable "+v.Name] = m[1]
	}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, tg := range p.Targets {
				exprs[fmt.Sprintf("panel %q target %s", p.Title, tg.RefID)] = tg.Expr
			}
		}
	}
	walk(d.Panels)
	return exprs
}

func TestDashboard(t *testing.T) {
	ex := scrape(t)
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q: both are needed", d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
	}
	if vars["datasource"] != "datasource" {
		t.Error("no datasource variable: the dashboard would be bound to one Prometheus")
	}
	ids := map[int]bool{}
	titles := map[string]bool{}
	p := parser.NewParser(parser.Options{})
	for _, pn := range d.Panels {
		if ids[pn.ID] {
			t.Errorf("panel id %d used twice", pn.ID)
		}
		ids[pn.ID] = true
		titles[pn.Title] = true
		if pn.Type == "row" {
			continue
		}
		if pn.Datasource["uid"] != "${datasource}" {
			t.Errorf("panel %q: datasource %v, want the ${datasource} variable", pn.Title, pn.Datasource)
		}
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		refs := map[string]bool{}
		for _, tg := range pn.Targets {
			if refs[tg.RefID] || tg.RefID == "" {
				t.Errorf("panel %q: refId %q empty or repeated", pn.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			e, err := p.ParseExpr(substitute(t, tg.Expr))
			if err != nil {
				t.Errorf("panel %q %s: %v\n%s", pn.Title, tg.RefID, err, tg.Expr)
				continue
			}
			out := labelsIn(e, ex)
			for _, m := range legendRef.FindAllStringSubmatch(tg.LegendFormat, -1) {
				if !out[m[1]] && !slices.Contains(targetLabels, m[1]) {
					t.Errorf("panel %q %s: legend {{%s}} is not a label of the query", pn.Title, tg.RefID, m[1])
				}
			}
			checkLabelsUsed(t, "panel "+pn.Title, e, ex, nil)
		}
	}
	for _, want := range []string{"Decisions by reason", "Check latency", "Key set refreshes", "Keys per issuer",
		"Key set age", "Cache hit ratio", "Configuration reloads"} {
		if !titles[want] {
			t.Errorf("no %q panel", want)
		}
	}
}

func substitute(t *testing.T, expr string) string {
	t.Helper()
	s := grafanaVars.Replace(expr)
	if strings.Contains(s, "$") {
		t.Errorf("unknown Grafana variable in %s", expr)
	}
	return s
}

// recordedNames are the series the rule file itself records.
func recordedNames(spec monitoringv1.PrometheusRuleSpec) map[string]bool {
	names := map[string]bool{}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				names[r.Record] = true
			}
		}
	}
	return names
}

// selectors returns the vector selectors of an expression.
func selectors(e parser.Expr) []*parser.VectorSelector {
	var out []*parser.VectorSelector
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out
}

// labelsIn is every label an expression could carry: those of the series it selects and those
// it groups or joins by. A generous union, but enough to catch a misspelt label in a legend or
// an annotation.
func labelsIn(e parser.Expr, ex exported) map[string]bool {
	out := map[string]bool{"le": true}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		switch n := n.(type) {
		case *parser.VectorSelector:
			for _, m := range n.LabelMatchers {
				out[m.Name] = true
			}
			if f, _ := ex.family(n.Name); f != nil {
				for _, m := range f.GetMetric() {
					for _, lp := range m.GetLabel() {
						out[lp.GetName()] = true
					}
				}
			}
		case *parser.AggregateExpr:
			for _, g := range n.Grouping {
				out[g] = true
			}
		case *parser.BinaryExpr:
			if n.VectorMatching != nil {
				for _, l := range n.VectorMatching.MatchingLabels {
					out[l] = true
				}
			}
		}
		return nil
	})
	return out
}

// exported is what a running Portcullis serves on /metrics, by family name; see scrape.
type exported map[string]*dto.MetricFamily

var (
	scrapeOnce sync.Once
	scraped    exported
)

// scrape runs Portcullis and scrapes it once for the whole package.
func scrape(t *testing.T) exported {
	t.Helper()
	scrapeOnce.Do(func() { scraped = scrapeRunningPortcullis(t) })
	if scraped == nil {
		t.Fatal("scraping a running Portcullis failed (see the first test that tried)")
	}
	return scraped
}

// checkLabelsUsed checks that every metric an expression selects is exported (or recorded by
// the rules) and has every label the selector matches on.
func checkLabelsUsed(t *testing.T, where string, e parser.Expr, ex exported, recorded map[string]bool) {
	t.Helper()
	for _, vs := range selectors(e) {
		if recorded[vs.Name] {
			continue
		}
		fam, suffix := ex.family(vs.Name)
		if fam == nil {
			t.Errorf("%s: metric %s is not exported by Portcullis", where, vs.Name)
			continue
		}
		have := map[string]bool{}
		for _, m := range fam.GetMetric() {
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = true
			}
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == "__name__" || slices.Contains(targetLabels, m.Name) || (m.Name == "le" && suffix == "_bucket") {
				continue
			}
			if !have[m.Name] {
				t.Errorf("%s: %s has no label %q (it has %v)", where, vs.Name, m.Name, slices.Sorted(maps.Keys(have)))
			}
		}
	}
}

// family finds the exported family a series name belongs to: itself, or a histogram's
// _bucket/_sum/_count series (a summary's _sum/_count).
func (ex exported) family(series string) (*dto.MetricFamily, string) {
	if f, ok := ex[series]; ok {
		return f, ""
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(series, suffix)
		if !ok {
			continue
		}
		f, ok := ex[base]
		if !ok {
			continue
		}
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			return f, suffix
		case dto.MetricType_SUMMARY:
			if suffix != "_bucket" {
				return f, suffix
			}
		}
	}
	return nil, ""
}

// TestMetricsExist checks every metric and label the rules and the dashboard use against the
// /metrics of a running Portcullis (see scrapeRunningPortcullis), and that every Portcullis
// metric is used somewhere.
func TestMetricsExist(t *testing.T) {
	ex := scrape(t)

	p := parser.NewParser(parser.Options{})
	spec := ruleFile(t)
	recorded := recordedNames(spec)
	used := map[string]bool{}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			e, err := p.ParseExpr(r.Expr.String())
			if err != nil {
				t.Fatalf("%s%s: %v", r.Alert, r.Record, err)
			}
			checkLabelsUsed(t, "rule "+r.Alert+r.Record, e, ex, recorded)
			for _, vs := range selectors(e) {
				used[vs.Name] = true
			}
		}
	}
	for where, expr := range dashboardExprs(t, loadDashboard(t)) {
		e, err := p.ParseExpr(substitute(t, expr))
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		checkLabelsUsed(t, where, e, ex, nil)
		for _, vs := range selectors(e) {
			if recorded[vs.Name] {
				t.Errorf("%s uses the recorded series %s; the dashboard must work without the rules", where, vs.Name)
			}
			used[vs.Name] = true
		}
	}
	// The other way round: every Portcullis family is on the dashboard or in a rule.
	shown := map[string]bool{}
	for n := range used {
		if f, _ := ex.family(n); f != nil {
			shown[f.GetName()] = true
		}
	}
	for n := range ex {
		if strings.HasPrefix(n, "portcullis_") && !shown[n] {
			t.Errorf("%s is exported but neither charted nor alerted on", n)
		}
	}
}

const (
	shippedIssuer = "https://keycloak.example.com/realms/demo"
	shippedCache  = "/var/cache/portcullis"
)

// scrapeRunningPortcullis starts the real server with the shipped configuration (its issuer
// swapped for a development identity provider on loopback), makes a few checks so that every
// series exists, and returns what /metrics serves.
func scrapeRunningPortcullis(t *testing.T) exported {
	t.Helper()
	idp, err := devidp.New()
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(idp)
	t.Cleanup(ts.Close)
	idp.SetIssuer(ts.URL + "/realms/demo")

	// The shipped configuration, changed only where a test must: loopback ports, the test
	// issuer, a temporary cache directory.
	cfg := string(readFile(t, "base/"+configFile))
	dir := t.TempDir()
	for old, repl := range map[string]string{
		`":9191"`:     `"127.0.0.1:0"`,
		`":9192"`:     `"127.0.0.1:0"`,
		`":9090"`:     `"127.0.0.1:0"`,
		shippedIssuer: idp.Issuer(),
		shippedCache:  filepath.Join(dir, "jwks"),
	} {
		if n := strings.Count(cfg, old); n != 1 {
			t.Fatalf("base/%s: %q appears %d times, want once", configFile, old, n)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	if err := os.Mkdir(filepath.Join(dir, "jwks"), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, configFile)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	srv, err := server.New(server.Options{ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	admin := "http://" + srv.Addr("admin").String()
	waitReady(t, admin+"/readyz")

	conn, err := grpc.NewClient(srv.Addr("grpc").String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	tok, err := idp.Mint(jwa.RS256, devidp.Claims{
		"sub": "user-1", "aud": "orders-api", "azp": "orders-web", "typ": "Bearer", "scope": "openid orders:read",
		"email_verified": true, "realm_access": map[string]any{"roles": []string{"user"}},
	}, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path, token string
		want        code.Code
	}{
		{"/api/orders/42", tok, code.Code_OK},             // orders-read: allow
		{"/api/orders/42", tok, code.Code_OK},             // again: a token cache hit
		{"/api/reports/daily", tok, code.Code_OK},         // reports is in dry run: allowed, counted
		{"/api/orders/42", "", code.Code_UNAUTHENTICATED}, // no token: 401
	} {
		headers := map[string]string{}
		if c.token != "" {
			headers["authorization"] = "Bearer " + c.token
		}
		resp, err := client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
				Method: "GET", Host: "orders.orders.svc.cluster.local", Path: c.path, Headers: headers,
			}},
		}})
		if err != nil {
			t.Fatalf("Check %s: %v", c.path, err)
		}
		if got := code.Code(resp.GetStatus().GetCode()); got != c.want {
			t.Fatalf("Check %s (token %v): status %v, want %v", c.path, c.token != "", got, c.want)
		}
	}

	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	tp := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := tp.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200", url)
}
