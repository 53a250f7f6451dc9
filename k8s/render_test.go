package k8s

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	networkingapi "istio.io/api/networking/v1alpha3"
	securityapi "istio.io/api/security/v1beta1"
	networkingv1istio "istio.io/client-go/pkg/apis/networking/v1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered manifest: its identity, its JSON and its strictly decoded typed form.
type object struct {
	Kind, APIVersion, Name, Namespace string
	JSON                              []byte
	Typed                             any
}

func (o object) String() string {
	return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
}

// kinds maps each kind the manifests may contain to its apiVersion and a constructor of its
// typed struct. A kind missing here fails the render: every object is decoded into real types.
var kinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Namespace":               {"v1", func() any { return &corev1.Namespace{} }},
	"ServiceAccount":          {"v1", func() any { return &corev1.ServiceAccount{} }},
	"ConfigMap":               {"v1", func() any { return &corev1.ConfigMap{} }},
	"Service":                 {"v1", func() any { return &corev1.Service{} }},
	"Deployment":              {"apps/v1", func() any { return &appsv1.Deployment{} }},
	"PodDisruptionBudget":     {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
	"HorizontalPodAutoscaler": {"autoscaling/v2", func() any { return &autoscalingv2.HorizontalPodAutoscaler{} }},
	"Job":                     {"batch/v1", func() any { return &batchv1.Job{} }},
	"NetworkPolicy":           {"networking.k8s.io/v1", func() any { return &networkingv1.NetworkPolicy{} }},
	"ServiceMonitor":          {"monitoring.coreos.com/v1", func() any { return &monitoringv1.ServiceMonitor{} }},
	"PrometheusRule":          {"monitoring.coreos.com/v1", func() any { return &monitoringv1.PrometheusRule{} }},
	"AuthorizationPolicy":     {"security.istio.io/v1", func() any { return &securityv1.AuthorizationPolicy{} }},
	"ServiceEntry":            {"networking.istio.io/v1", func() any { return &networkingv1istio.ServiceEntry{} }},
}

// render builds the kustomization in dir (relative to this package) in process, as
// `kubectl kustomize dir` would, and decodes every object strictly.
func render(t *testing.T, dir string) []object {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []object
	for _, r := range resMap.Resources() {
		js, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, r.CurId(), err)
		}
		o := object{Kind: r.GetKind(), APIVersion: r.GetApiVersion(), Name: r.GetName(), Namespace: r.GetNamespace(), JSON: js}
		o.Typed = decodeObject(t, o)
		objs = append(objs, o)
	}
	return objs
}

// decodeObject decodes one object into its typed struct, rejecting unknown fields at every level.
func decodeObject(t *testing.T, o object) any {
	t.Helper()
	k, ok := kinds[o.Kind]
	if !ok {
		t.Fatalf("%s: no typed decoder for kind %q; add it to kinds", o, o.Kind)
	}
	if o.APIVersion != k.apiVersion {
		t.Fatalf("%s: apiVersion %q, want %q", o, o.APIVersion, k.apiVersion)
	}
	typed := k.new()
	strictJSON(t, o.String(), o.JSON, typed)
	// Istio's client-go types decode spec with a lenient jsonpb shim that ignores unknown
	// fields; decode spec again with protojson, which rejects them.
	switch typed.(type) {
	case *securityv1.AuthorizationPolicy:
		strictProto(t, o.String()+" spec", specOf(t, o), &securityapi.AuthorizationPolicy{})
	case *networkingv1istio.ServiceEntry:
		strictProto(t, o.String()+" spec", specOf(t, o), &networkingapi.ServiceEntry{})
	}
	return typed
}

func specOf(t *testing.T, o object) []byte {
	t.Helper()
	var m struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(o.JSON, &m); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
	return m.Spec
}

// strictJSON decodes data into out as the Kubernetes API server does: field names match
// case-sensitively, and unknown or repeated fields fail. (encoding/json alone would accept
// `readOnlyRootFileSystem` for `readOnlyRootFilesystem`.)
func strictJSON(t *testing.T, what string, data []byte, out any) {
	t.Helper()
	strict, err := kjson.UnmarshalStrict(data, out, kjson.DisallowUnknownFields, kjson.DisallowDuplicateFields)
	if err != nil {
		t.Fatalf("%s: decode into %T: %v", what, out, err)
	}
	if len(strict) > 0 {
		t.Fatalf("%s: strict decode into %T: %v", what, out, errors.Join(strict...))
	}
}

// strictProto decodes protobuf JSON into m; protojson rejects unknown fields by default.
func strictProto(t *testing.T, what string, data []byte, m proto.Message) {
	t.Helper()
	if err := protojson.Unmarshal(data, m); err != nil {
		t.Fatalf("%s: strict decode into %T: %v", what, m, err)
	}
}

// strictYAML converts YAML to JSON and decodes it strictly into out.
func strictYAML(t *testing.T, what string, data []byte, out any) {
	t.Helper()
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	strictJSON(t, what, js, out)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// one returns the single object of type T named name; it fails if there is none or several.
func one[T any](t *testing.T, objs []object, name string) T {
	t.Helper()
	var found []T
	for _, o := range objs {
		if v, ok := o.Typed.(T); ok && o.Name == name {
			found = append(found, v)
		}
	}
	if len(found) != 1 {
		var zero T
		t.Fatalf("want exactly one %s named %q, found %d", reflect.TypeOf(zero).Elem().Name(), name, len(found))
	}
	return found[0]
}

// all returns every object of type T.
func all[T any](objs []object) []T {
	var found []T
	for _, o := range objs {
		if v, ok := o.Typed.(T); ok {
			found = append(found, v)
		}
	}
	return found
}
