package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/kube"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1istio "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/portcullis-authz/portcullis/config"
)

const (
	chartDir       = "../charts/portcullis"
	chartRulesFile = chartDir + "/files/portcullis-rules.yaml"
	validateName   = "portcullis-validate"
)

// kubeVersion stands for the cluster's version (the chart needs 1.30 or later, for the
// preStop sleep); the SDK's default, without a cluster, is 1.20.
var kubeVersion = chartutil.KubeVersion{Version: "v1.33.0", Major: "1", Minor: "33"}

// allOptions switches every optional part of the chart on. The configuration is given as a
// string (the other form of `config`): k8s/base/portcullis.yaml as it is, comments included.
func allOptions(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal([]byte(`
restartOnConfigChange: true
image: {repository: registry.example.com/portcullis, digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
imagePullSecrets: [{name: registry}]
podLabels: {team: platform}
priorityClassName: system-cluster-critical
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: authz, effect: NoSchedule}]
extraEnv: [{name: GOMAXPROCS, value: "1"}]
extraVolumes:
  - name: idp-ca
    configMap: {name: idp-ca-bundle}
  - name: client-secret
    secret: {secretName: portcullis-client, defaultMode: 0400}
extraVolumeMounts:
  - {name: idp-ca, mountPath: /etc/portcullis-ca, readOnly: true}
  - {name: client-secret, mountPath: /etc/portcullis-secrets, readOnly: true}
metrics:
  serviceMonitor: {enabled: true, labels: {release: kube-prometheus-stack}}
  prometheusRule: {enabled: true, labels: {release: kube-prometheus-stack}}
istio:
  enabled: true
  identityProviderHosts: [keycloak.example.com]
  workloads:
    - {name: orders-portcullis, namespace: orders, selector: {app: orders}}
    - {name: billing-portcullis, namespace: billing, selector: {app: billing, tier: api}, notPaths: [/healthz, /livez]}
`), &v); err != nil {
		t.Fatal(err)
	}
	v["config"] = string(readFile(t, "base/"+configFile))
	return v
}

// renderChart renders the chart in process as `helm install --dry-run` (client only) would,
// as the release portcullis in the namespace portcullis, and decodes every object, the
// hooks' apart, strictly into its API type.
func renderChart(t *testing.T, values map[string]any) (objs, hooks []object) {
	t.Helper()
	rel, err := dryRun(t, "portcullis", values)
	if err != nil {
		t.Fatalf("helm install --dry-run: %v", err)
	}
	objs = decodeManifests(t, releaseutil.SplitManifests(rel.Manifest))
	hookManifests := map[string]string{}
	for i, h := range rel.Hooks {
		hookManifests[fmt.Sprintf("%s/%03d", h.Path, i)] = h.Manifest
	}
	return objs, decodeManifests(t, hookManifests)
}

func dryRun(t *testing.T, releaseName string, values map[string]any) (*release.Release, error) {
	t.Helper()
	install := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	install.DryRun, install.ClientOnly = true, true
	install.ReleaseName, install.Namespace = releaseName, namespace
	install.KubeVersion = &kubeVersion
	return install.Run(loadChart(t), values)
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	return ch
}

// decodeManifests decodes rendered manifests (name → one or more YAML documents) in a
// stable order.
func decodeManifests(t *testing.T, manifests map[string]string) []object {
	t.Helper()
	var objs []object
	for _, k := range slices.Sorted(maps.Keys(manifests)) {
		for _, doc := range releaseutil.SplitManifests(manifests[k]) {
			// SplitManifests trims each document; Helm sends it with its final line break,
			// which a block scalar at its end keeps.
			js, err := yaml.YAMLToJSONStrict([]byte(doc + "\n")) // a repeated key fails
			if err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			if string(js) == "null" {
				continue
			}
			var meta struct {
				metav1.TypeMeta
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := json.Unmarshal(js, &meta); err != nil {
				t.Fatalf("%s: %v", k, err)
			}
			o := object{Kind: meta.Kind, APIVersion: meta.APIVersion, Name: meta.Metadata.Name, Namespace: meta.Metadata.Namespace, JSON: js}
			o.Typed = decodeObject(t, o)
			objs = append(objs, o)
		}
	}
	return objs
}

func names(objs []object) []string {
	var got []string
	for _, o := range objs {
		got = append(got, o.Kind+"/"+o.Namespace+"/"+o.Name)
	}
	slices.Sort(got)
	return got
}

// The chart's objects with the default values: those of k8s/base but the Namespace (Helm
// installs into one: --namespace, --create-namespace), and the validation hook.
func TestChartDefaults(t *testing.T) {
	objs, hooks := renderChart(t, nil)
	want := []string{"ConfigMap/portcullis/portcullis-config", "Deployment/portcullis/portcullis",
		"HorizontalPodAutoscaler/portcullis/portcullis", "NetworkPolicy/portcullis/portcullis",
		"PodDisruptionBudget/portcullis/portcullis", "Service/portcullis/portcullis", "ServiceAccount/portcullis/portcullis"}
	if got := names(objs); !slices.Equal(got, want) {
		t.Errorf("objects:\n got %v\nwant %v", got, want)
	}
	if got, want := names(hooks), []string{"ConfigMap/portcullis/" + validateName, "Job/portcullis/" + validateName}; !slices.Equal(got, want) {
		t.Errorf("hooks:\n got %v\nwant %v", got, want)
	}
	checkChart(t, objs, hooks)

	// Unset, the configuration is the chart's example, whose settings are k8s/base's.
	var got, base any
	cm := one[*corev1.ConfigMap](t, objs, configMap)
	if want := readFile(t, chartDir+"/files/"+configFile); cm.Data[configFile] != string(want) {
		t.Errorf("the ConfigMap is not files/%s:\n%s", configFile, cm.Data[configFile])
	}
	if err := yaml.Unmarshal([]byte(cm.Data[configFile]), &got); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(readFile(t, "base/"+configFile), &base); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, base) {
		t.Errorf("the chart's files/%s differs from base/%s; keep their settings equal:\n got %v\nwant %v", configFile, configFile, got, base)
	}
}

// checkChart runs on a chart rendering the checks the kustomize base passes, and checks the
// validation hook.
func checkChart(t *testing.T, objs, hooks []object) {
	t.Helper()
	checkDeployment(t, objs)
	checkService(t, objs)
	checkDisruptionBudgetAndAutoscaler(t, objs)
	checkNetworkPolicy(t, objs)
	for _, w := range embeddedConfig(t, objs).Warnings {
		t.Errorf("configuration warning: %s", w)
	}
	checkValidationHook(t, objs, hooks)
}

func TestChartAllOptions(t *testing.T) {
	values := allOptions(t)
	objs, hooks := renderChart(t, values)
	want := []string{"AuthorizationPolicy/billing/billing-portcullis", "AuthorizationPolicy/orders/orders-portcullis",
		"ConfigMap/portcullis/portcullis-config", "Deployment/portcullis/portcullis",
		"HorizontalPodAutoscaler/portcullis/portcullis", "NetworkPolicy/portcullis/portcullis", "NetworkPolicy/portcullis/portcullis-istio",
		"PodDisruptionBudget/portcullis/portcullis", "PrometheusRule/portcullis/portcullis", "Service/portcullis/portcullis",
		"ServiceAccount/portcullis/portcullis", "ServiceEntry/portcullis/portcullis-identity-providers", "ServiceMonitor/portcullis/portcullis"}
	if got := names(objs); !slices.Equal(got, want) {
		t.Errorf("objects:\n got %v\nwant %v", got, want)
	}
	checkChart(t, objs, hooks)

	cm := one[*corev1.ConfigMap](t, objs, configMap)
	if cm.Data[configFile] != values["config"] {
		t.Errorf("config given as a string: the ConfigMap holds\n%s\nwant it as written:\n%s", cm.Data[configFile], values["config"])
	}

	d := one[*appsv1.Deployment](t, objs, name)
	pod := d.Spec.Template.Spec
	if got := pod.Containers[0].Image; got != "registry.example.com/portcullis@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("image = %q", got)
	}
	if d.Spec.Template.Annotations["checksum/config"] == "" {
		t.Error("restartOnConfigChange: no checksum/config pod annotation")
	}
	if pod.PriorityClassName != "system-cluster-critical" || len(pod.Tolerations) != 1 || pod.NodeSelector["kubernetes.io/os"] != "linux" ||
		len(pod.ImagePullSecrets) != 1 || d.Spec.Template.Labels["team"] != "platform" || len(pod.Containers[0].Env) != 1 {
		t.Errorf("pod settings not rendered: %+v", pod)
	}
	// The extra volumes are mounted in the pods and in the validation Job alike.
	job := one[*batchv1.Job](t, hooks, validateName)
	for what, ps := range map[string]corev1.PodSpec{"Deployment": pod, "validation Job": job.Spec.Template.Spec} {
		mounts := map[string]string{}
		for _, m := range ps.Containers[0].VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		vols := map[string]corev1.Volume{}
		for _, v := range ps.Volumes {
			vols[v.Name] = v
		}
		if mounts["idp-ca"] != "/etc/portcullis-ca" || vols["idp-ca"].ConfigMap == nil || vols["idp-ca"].ConfigMap.Name != "idp-ca-bundle" {
			t.Errorf("%s: the CA bundle volume is not mounted: %v %+v", what, mounts, vols["idp-ca"])
		}
		if mounts["client-secret"] != "/etc/portcullis-secrets" || vols["client-secret"].Secret == nil || vols["client-secret"].Secret.SecretName != "portcullis-client" {
			t.Errorf("%s: the secret volume is not mounted: %v %+v", what, mounts, vols["client-secret"])
		}
	}

	t.Run("monitoring", func(t *testing.T) {
		svc := one[*corev1.Service](t, objs, name)
		sm := one[*monitoringv1.ServiceMonitor](t, objs, name)
		sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(svc.Labels)) {
			t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", sm.Spec.Selector, svc.Labels)
		}
		if !slices.Equal(sm.Spec.NamespaceSelector.MatchNames, []string{svc.Namespace}) {
			t.Errorf("ServiceMonitor looks in %v, want the Service's namespace %s", sm.Spec.NamespaceSelector.MatchNames, svc.Namespace)
		}
		checkJobLabel(t, sm, svc)
		if sm.Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("ServiceMonitor labels %v lack metrics.serviceMonitor.labels", sm.Labels)
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "http-admin" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor endpoints = %+v, want http-admin /metrics", sm.Spec.Endpoints)
		}
		pr := one[*monitoringv1.PrometheusRule](t, objs, name)
		if want := ruleFile(t); !reflect.DeepEqual(pr.Spec, want) {
			t.Errorf("the PrometheusRule's groups differ from %s", rulesFile)
		}
		if pr.Labels["release"] != "kube-prometheus-stack" {
			t.Errorf("PrometheusRule labels %v lack metrics.prometheusRule.labels", pr.Labels)
		}
	})

	t.Run("istio", func(t *testing.T) {
		want := map[string]struct {
			ns       string
			selector map[string]string
			notPaths []string
		}{
			"orders-portcullis":  {"orders", map[string]string{"app": "orders"}, []string{"/healthz"}},
			"billing-portcullis": {"billing", map[string]string{"app": "billing", "tier": "api"}, []string{"/healthz", "/livez"}},
		}
		aps := all[*securityv1.AuthorizationPolicy](objs)
		if len(aps) != len(want) {
			t.Fatalf("%d AuthorizationPolicies, want %d", len(aps), len(want))
		}
		for _, ap := range aps {
			w := want[ap.Name]
			spec := &ap.Spec
			if ap.Namespace != w.ns || spec.GetAction() != securityapi.AuthorizationPolicy_CUSTOM || spec.GetProvider().GetName() != providerName ||
				!maps.Equal(spec.GetSelector().GetMatchLabels(), w.selector) {
				t.Errorf("%s/%s: action %v provider %q selector %v, want %s CUSTOM %q %v", ap.Namespace, ap.Name, spec.GetAction(),
					spec.GetProvider().GetName(), spec.GetSelector().GetMatchLabels(), w.ns, providerName, w.selector)
			}
			rules := spec.GetRules()
			if len(rules) != 1 || len(rules[0].GetTo()) != 1 || len(rules[0].GetFrom()) != 0 || len(rules[0].GetWhen()) != 0 ||
				!slices.Equal(rules[0].GetTo()[0].GetOperation().GetNotPaths(), w.notPaths) {
				t.Errorf("%s: rules = %v, want one operation with notPaths %v", ap.Name, rules, w.notPaths)
			}
		}
		se := one[*networkingv1istio.ServiceEntry](t, objs, "portcullis-identity-providers")
		if !slices.Equal(se.Spec.GetHosts(), []string{"keycloak.example.com"}) || se.Spec.GetPorts()[0].GetNumber() != 443 {
			t.Errorf("ServiceEntry = %v", &se.Spec)
		}
		np := one[*networkingv1.NetworkPolicy](t, objs, "portcullis-istio")
		if len(np.Spec.Egress) != 1 || np.Spec.Egress[0].Ports[0].Port.IntValue() != 15012 {
			t.Errorf("no egress to istiod (15012) for the sidecar: %+v", np.Spec.Egress)
		}
	})
}

// checkJobLabel: the job label Prometheus gives the scraped series is "portcullis", the job
// the shipped alerts and the dashboard select, whatever the release is called.
func checkJobLabel(t *testing.T, sm *monitoringv1.ServiceMonitor, svc *corev1.Service) {
	t.Helper()
	job := svc.Name // the Prometheus Operator's default
	if sm.Spec.JobLabel != "" {
		job = svc.Labels[sm.Spec.JobLabel]
	}
	if job != "portcullis" {
		t.Errorf("scraped series get job=%q (jobLabel %q), want \"portcullis\": the rules select it", job, sm.Spec.JobLabel)
	}
}

// TestChartAgreesWithKustomize compares what matters between the two renderings.
func TestChartAgreesWithKustomize(t *testing.T) {
	base := render(t, "base")
	objs, _ := renderChart(t, nil)
	kd, cd := one[*appsv1.Deployment](t, base, name), one[*appsv1.Deployment](t, objs, name)
	kc, cc := kd.Spec.Template.Spec.Containers[0], cd.Spec.Template.Spec.Containers[0]
	same := func(what string, k, c any) {
		t.Helper()
		if !reflect.DeepEqual(k, c) {
			kj, _ := json.Marshal(k)
			cj, _ := json.Marshal(c)
			t.Errorf("%s differs:\nkustomize %s\n    chart %s", what, kj, cj)
		}
	}
	same("container ports", kc.Ports, cc.Ports)
	same("args", kc.Args, cc.Args)
	same("readiness probe", kc.ReadinessProbe, cc.ReadinessProbe)
	same("liveness probe", kc.LivenessProbe, cc.LivenessProbe)
	same("lifecycle", kc.Lifecycle, cc.Lifecycle)
	same("resources", kc.Resources, cc.Resources)
	same("container security context", kc.SecurityContext, cc.SecurityContext)
	same("volume mounts", kc.VolumeMounts, cc.VolumeMounts)
	same("pod security context", kd.Spec.Template.Spec.SecurityContext, cd.Spec.Template.Spec.SecurityContext)
	same("pod annotations", kd.Spec.Template.Annotations, cd.Spec.Template.Annotations)
	same("strategy", kd.Spec.Strategy, cd.Spec.Strategy)
	same("termination grace", kd.Spec.Template.Spec.TerminationGracePeriodSeconds, cd.Spec.Template.Spec.TerminationGracePeriodSeconds)
	same("service account token", kd.Spec.Template.Spec.AutomountServiceAccountToken, cd.Spec.Template.Spec.AutomountServiceAccountToken)
	same("volumes", kd.Spec.Template.Spec.Volumes, cd.Spec.Template.Spec.Volumes)
	same("Service ports", one[*corev1.Service](t, base, name).Spec.Ports, one[*corev1.Service](t, objs, name).Spec.Ports)

	knp, cnp := one[*networkingv1.NetworkPolicy](t, base, name), one[*networkingv1.NetworkPolicy](t, objs, name)
	same("NetworkPolicy ingress", knp.Spec.Ingress, cnp.Spec.Ingress)
	same("NetworkPolicy egress", knp.Spec.Egress, cnp.Spec.Egress)
	same("NetworkPolicy policy types", knp.Spec.PolicyTypes, cnp.Spec.PolicyTypes)
	kpdb, cpdb := one[*policyv1.PodDisruptionBudget](t, base, name), one[*policyv1.PodDisruptionBudget](t, objs, name)
	same("PDB minAvailable", kpdb.Spec.MinAvailable, cpdb.Spec.MinAvailable)
	khpa, chpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, base, name), one[*autoscalingv2.HorizontalPodAutoscaler](t, objs, name)
	same("HPA spec", khpa.Spec, chpa.Spec)

	// The selectors: the chart's are kustomize's plus the release (app.kubernetes.io/instance),
	// so that two releases never select each other's pods; each selects its own pods.
	wantSel := maps.Clone(kd.Spec.Selector.MatchLabels)
	wantSel["app.kubernetes.io/instance"] = "portcullis"
	for what, sel := range map[string]map[string]string{
		"Deployment":          cd.Spec.Selector.MatchLabels,
		"Service":             one[*corev1.Service](t, objs, name).Spec.Selector,
		"NetworkPolicy":       cnp.Spec.PodSelector.MatchLabels,
		"PodDisruptionBudget": cpdb.Spec.Selector.MatchLabels,
	} {
		if !maps.Equal(sel, wantSel) {
			t.Errorf("%s selects %v, want %v", what, sel, wantSel)
		}
	}
	for what, sel := range map[string]map[string]string{
		"Deployment":          kd.Spec.Selector.MatchLabels,
		"NetworkPolicy":       knp.Spec.PodSelector.MatchLabels,
		"PodDisruptionBudget": kpdb.Spec.Selector.MatchLabels,
	} {
		if !labels.SelectorFromSet(sel).Matches(labels.Set(cd.Spec.Template.Labels)) {
			t.Errorf("kustomize's %s selector %v does not select the chart's pods %v", what, sel, cd.Spec.Template.Labels)
		}
	}
}

// TestChartRulesAreTheAlertsFile: Helm's .Files reads only inside the chart, so the chart
// carries the shipped alert rules as a copy; it must be the file itself, byte for byte.
func TestChartRulesAreTheAlertsFile(t *testing.T) {
	if !bytes.Equal(readFile(t, chartRulesFile), readFile(t, rulesFile)) {
		t.Errorf("%s differs from %s: cp %s %s", chartRulesFile, rulesFile, "k8s/"+rulesFile, strings.TrimPrefix(chartRulesFile, "../"))
	}
}

// TestChartReleaseName: another release name renames every object consistently, and the
// alerts still see job="portcullis".
func TestChartReleaseName(t *testing.T) {
	values := allOptions(t)
	rel, err := dryRun(t, "edge", values)
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeManifests(t, releaseutil.SplitManifests(rel.Manifest))
	const full = "edge-portcullis"
	d := one[*appsv1.Deployment](t, objs, full)
	pod := d.Spec.Template.Spec
	if cm := one[*corev1.ConfigMap](t, objs, full+"-config"); pod.Volumes[0].ConfigMap == nil || pod.Volumes[0].ConfigMap.Name != cm.Name {
		t.Errorf("the config volume %+v is not the ConfigMap %s", pod.Volumes[0], cm.Name)
	}
	if sa := one[*corev1.ServiceAccount](t, objs, full); pod.ServiceAccountName != sa.Name {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, sa.Name)
	}
	if hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, objs, full); hpa.Spec.ScaleTargetRef.Name != full {
		t.Errorf("HPA scales %q, want %q", hpa.Spec.ScaleTargetRef.Name, full)
	}
	svc := one[*corev1.Service](t, objs, full)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	checkJobLabel(t, one[*monitoringv1.ServiceMonitor](t, objs, full), svc)
	// The release portcullis's selectors do not select this release's pods.
	other, _ := renderChart(t, nil)
	if labels.SelectorFromSet(one[*corev1.Service](t, other, name).Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Error("the Service of the release portcullis selects the pods of the release edge")
	}
}

// checkValidationHook: a pre-install and pre-upgrade Job runs `portcullis validate` on the
// very file the release's ConfigMap holds, fails at the first error, and has Helm print its
// output when it fails.
func checkValidationHook(t *testing.T, objs, hooks []object) {
	t.Helper()
	job := one[*batchv1.Job](t, hooks, validateName)
	hookCM := one[*corev1.ConfigMap](t, hooks, validateName)
	cm := one[*corev1.ConfigMap](t, objs, configMap)
	if !maps.Equal(hookCM.Data, cm.Data) {
		t.Errorf("the validation hook checks %v, the release installs %v", hookCM.Data, cm.Data)
	}
	for _, h := range []metav1.ObjectMeta{job.ObjectMeta, hookCM.ObjectMeta} {
		if got := h.Annotations[release.HookAnnotation]; got != "pre-install,pre-upgrade" {
			t.Errorf("%s: hook %q, want pre-install,pre-upgrade", h.Name, got)
		}
	}
	if cmW, jobW := hookCM.Annotations[release.HookWeightAnnotation], job.Annotations[release.HookWeightAnnotation]; !(atoi(t, cmW) < atoi(t, jobW)) {
		t.Errorf("hook weights: ConfigMap %s, Job %s; the ConfigMap must come first", cmW, jobW)
	}
	if got := job.Annotations[release.HookOutputLogAnnotation]; got != string(release.HookOutputOnFailed) {
		t.Errorf("hook-output-log-policy %q: Helm would not print Portcullis's message", got)
	}
	if job.Spec.BackoffLimit == nil || *job.Spec.BackoffLimit != 0 || job.Spec.ActiveDeadlineSeconds == nil {
		t.Errorf("backoffLimit %v activeDeadlineSeconds %v: want 0 retries and a deadline", job.Spec.BackoffLimit, job.Spec.ActiveDeadlineSeconds)
	}
	pod := job.Spec.Template.Spec
	if pod.RestartPolicy != corev1.RestartPolicyNever || job.Spec.Template.Annotations["sidecar.istio.io/inject"] != "false" {
		t.Errorf("restartPolicy %q, sidecar.istio.io/inject %q: want Never and false (a sidecar never exits)", pod.RestartPolicy, job.Spec.Template.Annotations["sidecar.istio.io/inject"])
	}
	if pod.ServiceAccountName != "" || pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Errorf("the Job runs before the release's ServiceAccount exists: want the default one, no token (%q, %v)", pod.ServiceAccountName, pod.AutomountServiceAccountToken)
	}
	d := one[*appsv1.Deployment](t, objs, name)
	c, main := pod.Containers[0], d.Spec.Template.Spec.Containers[0]
	if c.Image != main.Image || !reflect.DeepEqual(c.SecurityContext, main.SecurityContext) || !reflect.DeepEqual(pod.SecurityContext, d.Spec.Template.Spec.SecurityContext) {
		t.Error("the validation Job must run the Deployment's image under its security contexts")
	}
	cfgPath := main.Args[slices.Index(main.Args, "--config")+1]
	if want := []string{"validate", "--config", cfgPath}; !slices.Equal(c.Args, want) {
		t.Errorf("validation args %q, want %q", c.Args, want)
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
		t.Errorf("terminationMessagePolicy %q", c.TerminationMessagePolicy)
	}
	// The Job's pod is no replica.
	podLabels := labels.Set(job.Spec.Template.Labels)
	for what, sel := range map[string]map[string]string{
		"Deployment":          d.Spec.Selector.MatchLabels,
		"Service":             one[*corev1.Service](t, objs, name).Spec.Selector,
		"PodDisruptionBudget": one[*policyv1.PodDisruptionBudget](t, objs, name).Spec.Selector.MatchLabels,
	} {
		if labels.SelectorFromSet(sel).Matches(podLabels) {
			t.Errorf("the %s selector %v selects the validation Job's pod %v", what, sel, podLabels)
		}
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// cluster stands in for a cluster in an in-process `helm install`: Helm's printing fake,
// except that it runs the validation Job. When Helm waits for the Job, it lays the hook
// ConfigMaps it was given out as the Job's volumes would, and runs the Job's command as the
// portcullis binary does: config.Load on the --config file, printing "portcullis: " and the
// error (cmd/portcullis/main.go). The output is the pod's log. Helm calls it from a goroutine
// of its own, so it reports what goes wrong in broken, never through t.
type cluster struct {
	kubefake.PrintingKubeClient
	root    string            // where the Job's volumes are laid out
	broken  error             // what went wrong in the stand-in itself
	built   string            // the manifest of the last Build
	configs map[string]string // hook ConfigMap name → its portcullis.yaml
	jobErr  error             // the failure of the last Job run
	logs    bytes.Buffer
	jobs    int
}

func (c *cluster) Build(r io.Reader, _ bool) (kube.ResourceList, error) {
	b, err := io.ReadAll(r)
	c.built = string(b)
	return kube.ResourceList{}, err
}

func (c *cluster) WatchUntilReady(kube.ResourceList, time.Duration) error {
	if err := c.watch(); err != nil {
		c.broken = errors.Join(c.broken, err)
		return err
	}
	return c.jobErr
}

func (c *cluster) watch() error {
	c.jobErr = nil
	for _, doc := range releaseutil.SplitManifests(c.built) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return err
		}
		switch meta.Kind {
		case "ConfigMap":
			var cm corev1.ConfigMap
			if err := yaml.UnmarshalStrict([]byte(doc+"\n"), &cm); err != nil {
				return err
			}
			c.configs[cm.Name] = cm.Data[configFile]
		case "Job":
			var job batchv1.Job
			if err := yaml.UnmarshalStrict([]byte(doc+"\n"), &job); err != nil {
				return err
			}
			c.jobs++
			return c.runJob(&job)
		}
	}
	return nil
}

// runJob returns an error if the stand-in cannot run the Job, and sets jobErr if the Job fails.
func (c *cluster) runJob(job *batchv1.Job) error {
	ctr := job.Spec.Template.Spec.Containers[0]
	if len(ctr.Args) != 3 || ctr.Args[0] != "validate" || ctr.Args[1] != "--config" {
		return fmt.Errorf("the Job runs %q, not `validate --config FILE`", ctr.Args)
	}
	root := c.root
	for _, m := range ctr.VolumeMounts {
		for _, v := range job.Spec.Template.Spec.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				data, ok := c.configs[v.ConfigMap.Name]
				if !ok {
					return fmt.Errorf("job %s: configmap %q not found", job.Name, v.ConfigMap.Name)
				}
				if err := os.MkdirAll(filepath.Join(root, m.MountPath), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(root, m.MountPath, configFile), []byte(data), 0o444); err != nil {
					return err
				}
			}
		}
	}
	if _, err := config.Load(filepath.Join(root, ctr.Args[2])); err != nil {
		fmt.Fprintln(&c.logs, "portcullis:", err)
		c.jobErr = fmt.Errorf("job %s failed: BackoffLimitExceeded", job.Name) // as Helm's kube client says it
	}
	return nil
}

func (c *cluster) GetPodList(string, metav1.ListOptions) (*corev1.PodList, error) {
	return &corev1.PodList{Items: []corev1.Pod{{ObjectMeta: metav1.ObjectMeta{Name: validateName + "-x"}}}}, nil
}

func (c *cluster) OutputContainerLogsForPodList(pods *corev1.PodList, ns string, w func(ns, pod, container string) io.Writer) error {
	for _, p := range pods.Items {
		if _, err := w(ns, p.Name, "validate").Write(c.logs.Bytes()); err != nil {
			return err
		}
	}
	return nil
}

// TestChartInstallRefusesInvalidConfig installs the chart in process against the stand-in
// cluster: a configuration Portcullis refuses fails `helm install` in the pre-install hook,
// Helm prints Portcullis's own message, and nothing of the release is created.
func TestChartInstallRefusesInvalidConfig(t *testing.T) {
	// The chart's example configuration, as a map, changed.
	refused := func(mutate func(cfg map[string]any)) map[string]any {
		var cfg map[string]any
		if err := yaml.Unmarshal(readFile(t, chartDir+"/files/"+configFile), &cfg); err != nil {
			t.Fatal(err)
		}
		mutate(cfg)
		return map[string]any{"config": cfg}
	}
	for _, tc := range []struct {
		name   string
		values map[string]any
		// The configuration's own message, as `portcullis validate` prints it; nil for a valid one.
		refusedWith func(t *testing.T, values map[string]any) string
		// The field path the message names.
		path string
	}{
		{name: "default values", values: nil},
		{name: "unknown key", values: refused(func(cfg map[string]any) {
			is := cfg["issuers"].([]any)[0].(map[string]any)
			is["audience"] = is["audiences"]
			delete(is, "audiences")
		}), refusedWith: validateMessage, path: "issuers[0].audience"},
		{name: "no issuer", values: refused(func(cfg map[string]any) { cfg["issuers"] = []any{} }), refusedWith: validateMessage, path: "issuers"},
		{name: "config as text", values: map[string]any{"config": "server:\n  grpc_addr: \":9191\"\nrules: nope\n"}, refusedWith: validateMessage, path: "rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &cluster{PrintingKubeClient: kubefake.PrintingKubeClient{Out: io.Discard}, root: t.TempDir(), configs: map[string]string{}}
			var out bytes.Buffer
			cfg := &action.Configuration{
				KubeClient:   c,
				Releases:     storage.Init(driver.NewMemory()),
				Capabilities: chartutil.DefaultCapabilities.Copy(),
				Log:          func(string, ...any) {},
			}
			cfg.Capabilities.KubeVersion = kubeVersion
			cfg.SetHookOutputFunc(func(_, _, _ string) io.Writer { return &out })
			install := action.NewInstall(cfg)
			install.ReleaseName, install.Namespace = "portcullis", namespace
			rel, err := install.Run(loadChart(t), tc.values)
			if c.broken != nil {
				t.Fatalf("the stand-in cluster: %v", c.broken)
			}
			if c.jobs != 1 {
				t.Fatalf("the validation Job ran %d times, want once", c.jobs)
			}
			if tc.refusedWith == nil {
				if err != nil || out.Len() > 0 {
					t.Fatalf("install: %v, output %q; want success and no output", err, out.String())
				}
				return
			}
			want := tc.refusedWith(t, tc.values)
			if err == nil || !strings.Contains(err.Error(), "failed pre-install") {
				t.Fatalf("install error %v, want the pre-install hook's failure", err)
			}
			t.Logf("helm install: %v; Helm printed the hook's output:\n%s", err, out.String())
			if !strings.HasPrefix(out.String(), "portcullis: config: ") || !strings.Contains(out.String(), tc.path+":") {
				t.Errorf("Helm printed %q, want Portcullis's message on %s", out.String(), tc.path)
			}
			if out.String() != want {
				t.Errorf("Helm printed\n%s\nwant Portcullis's message\n%s", out.String(), want)
			}
			if rel.Info.Status != release.StatusFailed {
				t.Errorf("release status %s, want failed", rel.Info.Status)
			}
		})
	}
}

// validateMessage is what `portcullis validate` prints for the configuration in values, and
// checks that it is a refusal with a field path.
func validateMessage(t *testing.T, values map[string]any) string {
	t.Helper()
	_, hooks := renderChart(t, values)
	cm := one[*corev1.ConfigMap](t, hooks, validateName)
	_, err := config.Parse([]byte(cm.Data[configFile]), "/etc/portcullis")
	if err == nil {
		t.Fatal("the test's configuration is valid")
	}
	return "portcullis: " + err.Error() + "\n"
}

// TestChartSchemaRefuses: values.schema.json checks the chart's own values at install.
func TestChartSchemaRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   string
	}{
		{"replicas as text", map[string]any{"replicaCount": "two"}, "replicaCount"},
		{"misspelt value", map[string]any{"replicas": 3}, "replicas"},
		{"bad pull policy", map[string]any{"image": map[string]any{"pullPolicy": "Sometimes"}}, "pullPolicy"},
		{"port out of range", map[string]any{"ports": map[string]any{"grpc": 70000}}, "grpc"},
		{"workload without selector", map[string]any{"istio": map[string]any{"workloads": []any{map[string]any{"name": "a", "namespace": "b"}}}}, "selector"},
		{"config mount shadowed", map[string]any{"extraVolumeMounts": []any{map[string]any{"name": "x", "mountPath": "/etc/portcullis"}}}, "mountPath"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dryRun(t, "portcullis", tc.values)
			if err == nil || !strings.Contains(err.Error(), "values don't meet the specifications of the schema") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("install: %v; want a schema error naming %s", err, tc.want)
			}
		})
	}
}

// TestChartLint runs Helm's own linter (helm lint, strict) with the default values and with
// every option on.
func TestChartLint(t *testing.T) {
	for name, values := range map[string]map[string]any{"defaults": nil, "all options": allOptions(t)} {
		t.Run(name, func(t *testing.T) {
			l := lint.AllWithKubeVersion(chartDir, values, namespace, &kubeVersion)
			for _, m := range l.Messages {
				// The one remark: the project has no logo to point to.
				if m.Severity == support.InfoSev && m.Path == "Chart.yaml" && m.Err.Error() == "icon is recommended" {
					continue
				}
				t.Errorf("helm lint: %s", m)
			}
		})
	}
}
