package k8s

import (
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/portcullis-authz/portcullis/config"
)

const (
	namespace  = "portcullis"
	name       = "portcullis"
	configMap  = "portcullis-config"
	configFile = "portcullis.yaml"
	nonRootUID = 65532
)

// The container ports, named so that Istio detects each protocol.
var wantPorts = map[string]int32{"grpc-authz": 9191, "http-fwdauth": 9192, "http-admin": 9090}

func TestBaseObjects(t *testing.T) {
	objs := render(t, "base")
	var got []string
	for _, o := range objs {
		got = append(got, o.Kind+"/"+o.Name)
		if o.Kind != "Namespace" && o.Namespace != namespace {
			t.Errorf("%s: namespace %q, want %q", o, o.Namespace, namespace)
		}
	}
	slices.Sort(got)
	want := []string{"ConfigMap/portcullis-config", "Deployment/portcullis", "HorizontalPodAutoscaler/portcullis",
		"Namespace/portcullis", "NetworkPolicy/portcullis", "PodDisruptionBudget/portcullis", "Service/portcullis",
		"ServiceAccount/portcullis"}
	if !slices.Equal(got, want) {
		t.Errorf("objects:\n got %v\nwant %v", got, want)
	}
}

func TestDeployment(t *testing.T) { checkDeployment(t, render(t, "base")) }

// checkDeployment checks the Deployment of a rendering (kustomize's or the chart's) named
// portcullis in the namespace portcullis.
func checkDeployment(t *testing.T, objs []object) {
	d := one[*appsv1.Deployment](t, objs, name)
	pod := d.Spec.Template.Spec

	if d.Spec.Replicas == nil {
		if len(all[*autoscalingv2.HorizontalPodAutoscaler](objs)) == 0 {
			t.Error("replicas unset and no HorizontalPodAutoscaler owns the count")
		}
	} else if *d.Spec.Replicas < 2 {
		t.Errorf("replicas = %v, want at least 2", *d.Spec.Replicas)
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("selector %v does not match the pod labels %v (%v)", d.Spec.Selector, d.Spec.Template.Labels, err)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if want := []string{"serve", "--config", "/etc/portcullis/portcullis.yaml", "--log-format", "json"}; !slices.Equal(c.Args, want) {
		t.Errorf("args = %q, want %q", c.Args, want)
	}

	t.Run("ports", func(t *testing.T) {
		got := map[string]int32{}
		for _, p := range c.Ports {
			got[p.Name] = p.ContainerPort
			if p.Protocol != corev1.ProtocolTCP {
				t.Errorf("port %s: protocol %q", p.Name, p.Protocol)
			}
		}
		if !mapsEqual(got, wantPorts) {
			t.Errorf("container ports = %v, want %v", got, wantPorts)
		}
	})

	t.Run("probes", func(t *testing.T) {
		for _, p := range []struct {
			name  string
			probe *corev1.Probe
			path  string
		}{{"readiness", c.ReadinessProbe, "/readyz"}, {"liveness", c.LivenessProbe, "/healthz"}} {
			if p.probe == nil || p.probe.HTTPGet == nil {
				t.Errorf("%s probe: want an HTTP GET", p.name)
				continue
			}
			if p.probe.HTTPGet.Path != p.path {
				t.Errorf("%s probe path = %q, want %q", p.name, p.probe.HTTPGet.Path, p.path)
			}
			if port := resolvePort(t, c, p.probe.HTTPGet.Port); port != 9090 {
				t.Errorf("%s probe port = %d, want the admin port 9090", p.name, port)
			}
			if p.probe.HTTPGet.Scheme != "" && p.probe.HTTPGet.Scheme != corev1.URISchemeHTTP {
				t.Errorf("%s probe scheme = %q", p.name, p.probe.HTTPGet.Scheme)
			}
		}
	})

	t.Run("security context", func(t *testing.T) {
		psc, sc := pod.SecurityContext, c.SecurityContext
		if psc == nil || sc == nil {
			t.Fatal("pod and container securityContext are both required")
		}
		check := func(field string, ok bool) {
			if !ok {
				t.Errorf("securityContext: %s", field)
			}
		}
		check("pod runAsNonRoot true", isTrue(psc.RunAsNonRoot))
		check("pod runAsUser 65532", psc.RunAsUser != nil && *psc.RunAsUser == nonRootUID)
		check("pod seccompProfile RuntimeDefault", psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
		check("runAsNonRoot true", isTrue(sc.RunAsNonRoot))
		check("runAsUser 65532", sc.RunAsUser != nil && *sc.RunAsUser == nonRootUID)
		check("readOnlyRootFilesystem true", isTrue(sc.ReadOnlyRootFilesystem))
		check("allowPrivilegeEscalation false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation)
		check("privileged unset or false", sc.Privileged == nil || !*sc.Privileged)
		check("capabilities drop [ALL], add none", sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(sc.Capabilities.Add) == 0)
		check("seccompProfile RuntimeDefault", sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault)
	})

	t.Run("resources", func(t *testing.T) {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, lim := c.Resources.Requests[r], c.Resources.Limits[r]
			if req.IsZero() || lim.IsZero() {
				t.Errorf("%s: request %v and limit %v must both be set", r, req.String(), lim.String())
			} else if req.Cmp(lim) > 0 {
				t.Errorf("%s: request %v above limit %v", r, req.String(), lim.String())
			}
		}
	})

	t.Run("topology spread", func(t *testing.T) {
		keys := map[string]bool{}
		for _, tsc := range pod.TopologySpreadConstraints {
			keys[tsc.TopologyKey] = true
			sel, err := metav1.LabelSelectorAsSelector(tsc.LabelSelector)
			if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				t.Errorf("topology spread on %s: selector %v does not select the pods", tsc.TopologyKey, tsc.LabelSelector)
			}
		}
		for _, k := range []string{"topology.kubernetes.io/zone", "kubernetes.io/hostname"} {
			if !keys[k] {
				t.Errorf("no topology spread constraint on %s", k)
			}
		}
	})

	t.Run("service account", func(t *testing.T) {
		sa := one[*corev1.ServiceAccount](t, objs, pod.ServiceAccountName)
		if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
			t.Error("ServiceAccount: automountServiceAccountToken must be false")
		}
		if pod.AutomountServiceAccountToken != nil && *pod.AutomountServiceAccountToken {
			t.Error("pod: automountServiceAccountToken overrides the ServiceAccount with true")
		}
	})

	t.Run("volumes", func(t *testing.T) {
		cfg := embeddedConfig(t, objs)
		volumes := map[string]corev1.Volume{}
		for _, v := range pod.Volumes {
			volumes[v.Name] = v
		}
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range c.VolumeMounts {
			if m.SubPath != "" || m.SubPathExpr != "" {
				t.Errorf("volume mount %s uses a subPath: subPath mounts never see ConfigMap updates, so live reload breaks", m.Name)
			}
			mounts[m.MountPath] = m
		}
		// The configuration: the ConfigMap mounted as the directory --config points into.
		cfgPath := c.Args[slices.Index(c.Args, "--config")+1]
		m, ok := mounts[path.Dir(cfgPath)]
		if !ok {
			t.Fatalf("nothing is mounted at %s, the directory of --config %s", path.Dir(cfgPath), cfgPath)
		}
		v := volumes[m.Name]
		if v.ConfigMap == nil || v.ConfigMap.Name != configMap {
			t.Errorf("%s is not the ConfigMap %s: %+v", m.MountPath, configMap, v.VolumeSource)
		} else if len(v.ConfigMap.Items) > 0 {
			t.Errorf("the config volume lists items; mount every key so %s is present", path.Base(cfgPath))
		}
		if !m.ReadOnly {
			t.Errorf("%s should be mounted read-only", m.MountPath)
		}
		if path.Base(cfgPath) != configFile {
			t.Errorf("--config names %s; the ConfigMap key is %s", path.Base(cfgPath), configFile)
		}
		// The key-set cache: a writable emptyDir, since the root file system is read-only.
		if cfg.JWKSCacheDir == "" {
			t.Fatal("the configuration sets no jwks_cache_dir")
		}
		m, ok = mounts[cfg.JWKSCacheDir]
		if !ok {
			t.Fatalf("jwks_cache_dir %s is not a mounted volume; the read-only root would refuse writes", cfg.JWKSCacheDir)
		}
		if v := volumes[m.Name]; v.EmptyDir == nil || m.ReadOnly {
			t.Errorf("%s: want a writable emptyDir, got %+v (readOnly %v)", m.MountPath, v.VolumeSource, m.ReadOnly)
		}
	})
}

func TestConfigMapIsTheValidConfiguration(t *testing.T) {
	objs := render(t, "base")
	cm := one[*corev1.ConfigMap](t, objs, configMap) // found by exact name: no hash suffix
	if want := readFile(t, "base/"+configFile); cm.Data[configFile] != string(want) {
		t.Errorf("ConfigMap %s key %s differs from base/%s", configMap, configFile, configFile)
	}
	cfg := embeddedConfig(t, objs)
	// The listeners are the container ports.
	for addr, port := range map[string]string{cfg.Server.GRPCAddr: "grpc-authz", cfg.Server.HTTPAddr: "http-fwdauth", cfg.Server.AdminAddr: "http-admin"} {
		if addr != ":"+strconv.Itoa(int(wantPorts[port])) {
			t.Errorf("listen address %q does not match the %s port %d", addr, port, wantPorts[port])
		}
	}
	if cfg.Server.TLS.Enabled() {
		t.Error("the base configuration enables TLS but mounts no certificates")
	}
	if len(cfg.Issuers) == 0 || cfg.Issuers[0].Issuer != "https://keycloak.example.com/realms/demo" {
		t.Errorf("issuers = %+v", cfg.Issuers)
	}
	for _, is := range cfg.Issuers {
		if len(is.Audiences) == 0 {
			t.Errorf("issuer %s checks no audience", is.Issuer)
		}
	}
	for _, w := range cfg.Warnings {
		t.Errorf("configuration warning: %s", w)
	}
}

// embeddedConfig validates the configuration in the rendered ConfigMap exactly as
// `portcullis validate` does, resolved against the directory it is mounted at.
func embeddedConfig(t *testing.T, objs []object) *config.Loaded {
	t.Helper()
	cm := one[*corev1.ConfigMap](t, objs, configMap)
	data, ok := cm.Data[configFile]
	if !ok {
		t.Fatalf("ConfigMap %s has no key %s", configMap, configFile)
	}
	cfg, err := config.Parse([]byte(data), "/etc/portcullis")
	if err != nil {
		t.Fatalf("the ConfigMap's %s does not validate:\n%v", configFile, err)
	}
	return cfg
}

func TestService(t *testing.T) { checkService(t, render(t, "base")) }

func checkService(t *testing.T, objs []object) {
	svc := one[*corev1.Service](t, objs, name)
	d := one[*appsv1.Deployment](t, objs, name)
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service selector %v does not select the pods %v", svc.Spec.Selector, d.Spec.Template.Labels)
	}
	got := map[string]int32{}
	for _, p := range svc.Spec.Ports {
		got[p.Name] = p.Port
		if target := resolvePort(t, d.Spec.Template.Spec.Containers[0], p.TargetPort); target != wantPorts[p.Name] {
			t.Errorf("Service port %s targets container port %d, want %d", p.Name, target, wantPorts[p.Name])
		}
		wantProto := "http"
		if strings.HasPrefix(p.Name, "grpc") {
			wantProto = "grpc"
		}
		if p.AppProtocol == nil || *p.AppProtocol != wantProto {
			t.Errorf("Service port %s: appProtocol %v, want %s", p.Name, p.AppProtocol, wantProto)
		}
	}
	if !mapsEqual(got, wantPorts) {
		t.Errorf("Service ports = %v, want %v", got, wantPorts)
	}
}

func TestDisruptionBudgetAndAutoscaler(t *testing.T) {
	checkDisruptionBudgetAndAutoscaler(t, render(t, "base"))
}

func checkDisruptionBudgetAndAutoscaler(t *testing.T, objs []object) {
	d := one[*appsv1.Deployment](t, objs, name)

	pdb := one[*policyv1.PodDisruptionBudget](t, objs, name)
	if pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != intstr.FromInt32(1) {
		t.Errorf("PDB minAvailable = %v, want 1", pdb.Spec.MinAvailable)
	}
	if pdb.Spec.MaxUnavailable != nil {
		t.Error("PDB sets both minAvailable and maxUnavailable")
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("PDB selector %v does not select the pods", pdb.Spec.Selector)
	}

	hpa := one[*autoscalingv2.HorizontalPodAutoscaler](t, objs, name)
	ref := hpa.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name {
		t.Errorf("HPA scales %+v, want the Deployment %s", ref, d.Name)
	}
	if hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 || (d.Spec.Replicas != nil && *hpa.Spec.MinReplicas != *d.Spec.Replicas) {
		t.Errorf("HPA minReplicas %v: want at least 2 and equal to the Deployment's replicas %v if it sets them", hpa.Spec.MinReplicas, d.Spec.Replicas)
	}
	if hpa.Spec.MaxReplicas <= *hpa.Spec.MinReplicas {
		t.Errorf("HPA maxReplicas %d leaves no room above minReplicas", hpa.Spec.MaxReplicas)
	}
	cpu := false
	for _, m := range hpa.Spec.Metrics {
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil && m.Resource.Name == corev1.ResourceCPU &&
			m.Resource.Target.Type == autoscalingv2.UtilizationMetricType && m.Resource.Target.AverageUtilization != nil {
			cpu = true
		}
	}
	if !cpu {
		t.Errorf("HPA has no CPU utilization target: %+v", hpa.Spec.Metrics)
	}
}

func TestNetworkPolicy(t *testing.T) { checkNetworkPolicy(t, render(t, "base")) }

func checkNetworkPolicy(t *testing.T, objs []object) {
	d := one[*appsv1.Deployment](t, objs, name)
	c := d.Spec.Template.Spec.Containers[0]
	np := one[*networkingv1.NetworkPolicy](t, objs, name)
	sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("NetworkPolicy podSelector %v does not select the pods", np.Spec.PodSelector)
	}
	if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
		t.Errorf("policyTypes = %v, want Ingress and Egress", np.Spec.PolicyTypes)
	}

	// Ingress: the check ports from the mesh, the admin port from monitoring only.
	from := map[int32][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range np.Spec.Ingress {
		if len(rule.Ports) == 0 {
			t.Errorf("an ingress rule opens every port: %+v", rule)
		}
		for _, p := range rule.Ports {
			if p.Port == nil {
				t.Errorf("an ingress rule opens every port: %+v", rule)
				continue
			}
			port := resolvePort(t, c, *p.Port)
			from[port] = append(from[port], rule.From...)
		}
	}
	for _, port := range []int32{9191, 9192, 9090} {
		if len(from[port]) == 0 {
			t.Errorf("ingress to %d: no rule, or a rule open to everyone", port)
		}
	}
	for _, peer := range from[9090] {
		if peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
			t.Errorf("admin port 9090 reachable from %+v, want only the monitoring namespace", peer)
		}
	}

	// Egress: DNS over UDP and TCP, and HTTPS to the identity provider.
	egress := map[string]bool{}
	for _, rule := range np.Spec.Egress {
		for _, p := range rule.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			egress[string(proto)+"/"+p.Port.String()] = true
		}
	}
	for _, want := range []string{"UDP/53", "TCP/53", "TCP/443"} {
		if !egress[want] {
			t.Errorf("no egress rule for %s (have %v)", want, egress)
		}
	}
}

// resolvePort turns a named or numbered port of container c into its number.
func resolvePort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	t.Errorf("port %q is not a container port", p.StrVal)
	return 0
}

func isTrue(b *bool) bool { return b != nil && *b }

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
