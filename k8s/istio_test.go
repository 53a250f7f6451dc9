package k8s

import (
	"fmt"
	"slices"
	"testing"
	"time"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityapi "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

const providerName = "portcullis"

// meshExtensionProvider decodes istio/mesh-config.yaml strictly: the ConfigMap, then its `mesh`
// key into Istio's MeshConfig (protojson: unknown or misspelt fields fail).
func meshExtensionProvider(t *testing.T) *meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc {
	t.Helper()
	var cm corev1.ConfigMap
	strictYAML(t, "istio/mesh-config.yaml", readFile(t, "istio/mesh-config.yaml"), &cm)
	if cm.Kind != "ConfigMap" || cm.APIVersion != "v1" || cm.Name != "istio" || cm.Namespace != "istio-system" {
		t.Fatalf("istio/mesh-config.yaml is %s %s %s/%s; istiod reads the ConfigMap istio-system/istio", cm.APIVersion, cm.Kind, cm.Namespace, cm.Name)
	}
	mesh, ok := cm.Data["mesh"]
	if !ok {
		t.Fatal("istio/mesh-config.yaml: no `mesh` key")
	}
	js, err := yaml.YAMLToJSON([]byte(mesh))
	if err != nil {
		t.Fatal(err)
	}
	var mc meshv1alpha1.MeshConfig
	strictProto(t, "mesh config", js, &mc)
	var found []*meshv1alpha1.MeshConfig_ExtensionProvider
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == providerName {
			found = append(found, p)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one extension provider named %q, found %d", providerName, len(found))
	}
	grpc, ok := found[0].GetProvider().(*meshv1alpha1.MeshConfig_ExtensionProvider_EnvoyExtAuthzGrpc)
	if !ok {
		t.Fatalf("extension provider %q is %T, want envoyExtAuthzGrpc", providerName, found[0].GetProvider())
	}
	return grpc
}

func TestMeshExtensionProvider(t *testing.T) {
	p := meshExtensionProvider(t).EnvoyExtAuthzGrpc
	svc := one[*corev1.Service](t, render(t, "base"), name)
	if want := fmt.Sprintf("%s.%s.svc.cluster.local", svc.Name, svc.Namespace); p.GetService() != want {
		t.Errorf("service = %q, want %q", p.GetService(), want)
	}
	var grpcPort int32
	for _, sp := range svc.Spec.Ports {
		if sp.Name == "grpc-authz" {
			grpcPort = sp.Port
		}
	}
	if p.GetPort() != uint32(grpcPort) || grpcPort != 9191 {
		t.Errorf("port = %d, want the Service's grpc-authz port %d", p.GetPort(), grpcPort)
	}
	if p.GetTimeout().AsDuration() != 500*time.Millisecond {
		t.Errorf("timeout = %v, want 0.5s", p.GetTimeout().AsDuration())
	}
	if p.GetFailOpen() {
		t.Error("failOpen must be false: an unreachable Portcullis denies")
	}
	if p.GetStatusOnError() != "503" {
		t.Errorf("statusOnError = %q, want 503", p.GetStatusOnError())
	}
	if p.GetIncludeRequestBodyInCheck() != nil {
		t.Error("includeRequestBodyInCheck is set; Portcullis decides on headers only")
	}
	if p.GetClearRouteCache() {
		t.Error("clearRouteCache is set: Envoy would route every allowed request again (Portcullis sets headers on each), and those headers do not change the route")
	}
}

func TestIstioOverlay(t *testing.T) {
	objs := render(t, "istio")

	// The overlay adds to the base without changing it, so it can be applied alongside the
	// monitoring overlay.
	assertIncludesBase(t, "istio", objs)

	aps := all[*securityv1.AuthorizationPolicy](objs)
	if len(aps) != 1 {
		t.Fatalf("%d AuthorizationPolicies, want 1", len(aps))
	}
	ap := aps[0]
	spec := &ap.Spec
	if spec.GetAction() != securityapi.AuthorizationPolicy_CUSTOM {
		t.Errorf("action = %v, want CUSTOM", spec.GetAction())
	}
	if got := spec.GetProvider().GetName(); got != providerName {
		t.Errorf("provider.name = %q, want the extension provider %q", got, providerName)
	}
	if got := spec.GetSelector().GetMatchLabels(); len(got) != 1 || got["app"] != "orders" {
		t.Errorf("selector = %v, want app: orders", got)
	}
	if ap.Namespace == namespace || ap.Namespace == "" {
		t.Errorf("AuthorizationPolicy in namespace %q: it must live beside the workload it selects", ap.Namespace)
	}
	// Every path except /healthz goes to Portcullis: one rule, one operation, only notPaths.
	rules := spec.GetRules()
	if len(rules) != 1 || len(rules[0].GetFrom()) != 0 || len(rules[0].GetWhen()) != 0 || len(rules[0].GetTo()) != 1 {
		t.Fatalf("rules = %v, want one rule with a single `to`", rules)
	}
	op := rules[0].GetTo()[0].GetOperation()
	if !slices.Equal(op.GetNotPaths(), []string{"/healthz"}) || len(op.GetPaths()) != 0 || len(op.GetHosts()) != 0 ||
		len(op.GetMethods()) != 0 || len(op.GetPorts()) != 0 || len(op.GetNotHosts()) != 0 || len(op.GetNotMethods()) != 0 || len(op.GetNotPorts()) != 0 {
		t.Errorf("operation = %v, want only notPaths [/healthz]", op)
	}

	// The sidecar reaches istiod.
	istiod := false
	for _, np := range all[*networkingv1.NetworkPolicy](objs) {
		for _, rule := range np.Spec.Egress {
			for _, p := range rule.Ports {
				if p.Port != nil && p.Port.IntValue() == 15012 {
					istiod = true
				}
			}
		}
	}
	if !istiod {
		t.Error("no egress to istiod (15012) for the sidecar")
	}
}

// assertIncludesBase checks that an overlay renders every base object unchanged.
func assertIncludesBase(t *testing.T, overlay string, objs []object) {
	t.Helper()
	rendered := map[string]string{}
	for _, o := range objs {
		rendered[o.String()] = string(o.JSON)
	}
	for _, b := range render(t, "base") {
		got, ok := rendered[b.String()]
		if !ok {
			t.Errorf("%s: the base's %s is missing", overlay, b)
		} else if got != string(b.JSON) {
			t.Errorf("%s changes the base's %s; overlays only add objects, so that they can be applied together", overlay, b)
		}
	}
}
