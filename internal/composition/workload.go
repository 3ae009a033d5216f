package composition

import (
	"strings"

	apimachineryvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// Workload holds what a Deployment user reaches for beyond the image, without patches: metadata
// on every composed object and on the pods, scheduling, pull secrets, the command, env from
// ConfigMaps and Secrets, and the service account. Agents, tools and the router share it.
type Workload struct {
	// Labels and Annotations go on every composed object; the composite's own labels win.
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// PodLabels and PodAnnotations go on the pod template only.
	PodLabels      map[string]string `json:"pod_labels,omitempty"`
	PodAnnotations map[string]string `json:"pod_annotations,omitempty"`

	NodeSelector     map[string]string `json:"node_selector,omitempty"`
	Tolerations      []Toleration      `json:"tolerations,omitempty"`
	ImagePullSecrets []string          `json:"image_pull_secrets,omitempty"`
	// Command replaces the image's entrypoint, Args its arguments.
	Command []string  `json:"command,omitempty"`
	Args    []string  `json:"args,omitempty"`
	EnvFrom []EnvFrom `json:"env_from,omitempty"`

	// ServiceAccount names an existing service account to run as: none is created. Its name is
	// then the one in the workload's SPIFFE ID.
	ServiceAccount string `json:"service_account,omitempty"`
	// ServiceAccountAnnotations go on the service account the composite creates (cloud
	// workload identity, for instance).
	ServiceAccountAnnotations map[string]string `json:"service_account_annotations,omitempty"`
}

// Toleration is a pod toleration.
type Toleration struct {
	Key               string `json:"key,omitempty"`
	Operator          string `json:"operator,omitempty"`
	Value             string `json:"value,omitempty"`
	Effect            string `json:"effect,omitempty"`
	TolerationSeconds *int64 `json:"toleration_seconds,omitempty"`
}

// EnvFrom takes every key of one ConfigMap or Secret as environment variables.
type EnvFrom struct {
	ConfigMap string `json:"config_map,omitempty"`
	Secret    string `json:"secret,omitempty"`
	Prefix    string `json:"prefix,omitempty"`
}

// ServiceAccountName is the service account the pods run as.
func (w Workload) ServiceAccountName(composite string) string {
	if w.ServiceAccount != "" {
		return w.ServiceAccount
	}
	return composite
}

// validateWorkload checks the settings. Labels and annotations are attributes of the resource's
// root; the pod's settings are under pod (agents and tools: "pod", the platform: "router_pod").
func validateWorkload(w Workload, pod *field.Path, keys contract.Keys) field.ErrorList {
	var errs field.ErrorList
	child := func(name string) *field.Path {
		switch name {
		case "labels", "annotations":
			return field.NewPath(name)
		case "pod_labels":
			return pod.Child("labels")
		case "pod_annotations":
			return pod.Child("annotations")
		}
		return pod.Child(name)
	}
	for _, set := range []struct {
		name   string
		labels map[string]string
	}{{"labels", w.Labels}, {"pod_labels", w.PodLabels}, {"node_selector", w.NodeSelector}} {
		errs = append(errs, metav1validation.ValidateLabels(set.labels, child(set.name))...)
		if set.name == "node_selector" {
			continue
		}
		for k := range set.labels {
			if ours(k, keys) {
				errs = append(errs, field.Forbidden(child(set.name).Key(k), "the provider sets this label itself (discovery, pruning and selectors depend on it): choose another key"))
			}
		}
	}
	errs = append(errs, apimachineryvalidation.ValidateAnnotations(w.Annotations, child("annotations"))...)
	errs = append(errs, apimachineryvalidation.ValidateAnnotations(w.PodAnnotations, child("pod_annotations"))...)
	errs = append(errs, apimachineryvalidation.ValidateAnnotations(w.ServiceAccountAnnotations, child("service_account_annotations"))...)
	for k := range w.Annotations {
		if strings.HasPrefix(k, keys.Domain+"/") {
			errs = append(errs, field.Forbidden(child("annotations").Key(k), "annotations under "+keys.Domain+"/ are the provider's: choose another key"))
		}
	}
	for i, t := range w.Tolerations {
		p := child("tolerations").Index(i)
		switch t.Operator {
		case "", "Equal":
			if t.Key == "" {
				errs = append(errs, field.Required(p.Child("key"), `operator "Equal" needs a key (or use operator = "Exists" to tolerate every taint)`))
			}
		case "Exists":
			if t.Value != "" {
				errs = append(errs, field.Invalid(p.Child("value"), t.Value, `must be empty with operator "Exists"`))
			}
		default:
			errs = append(errs, field.NotSupported(p.Child("operator"), t.Operator, []string{"Equal", "Exists"}))
		}
		if t.Key != "" {
			for _, msg := range validation.IsQualifiedName(t.Key) {
				errs = append(errs, field.Invalid(p.Child("key"), t.Key, msg))
			}
		}
		switch t.Effect {
		case "", "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			errs = append(errs, field.NotSupported(p.Child("effect"), t.Effect, []string{"NoSchedule", "PreferNoSchedule", "NoExecute"}))
		}
		if t.TolerationSeconds != nil && t.Effect != "NoExecute" {
			errs = append(errs, field.Invalid(p.Child("toleration_seconds"), *t.TolerationSeconds, `only applies with effect "NoExecute"`))
		}
	}
	for i, s := range w.ImagePullSecrets {
		for _, msg := range validation.IsDNS1123Subdomain(s) {
			errs = append(errs, field.Invalid(child("image_pull_secrets").Index(i), s, msg))
		}
	}
	for i, e := range w.EnvFrom {
		p := child("env_from").Index(i)
		if (e.ConfigMap == "") == (e.Secret == "") {
			errs = append(errs, field.Required(p, "set exactly one of config_map and secret"))
		}
		for _, name := range []string{e.ConfigMap, e.Secret} {
			if name == "" {
				continue
			}
			for _, msg := range validation.IsDNS1123Subdomain(name) {
				errs = append(errs, field.Invalid(p, name, msg))
			}
		}
		if e.Prefix != "" && !envName.MatchString(e.Prefix) {
			errs = append(errs, field.Invalid(p.Child("prefix"), e.Prefix, "must start an environment variable name: letters, digits and '_', not starting with a digit"))
		}
	}
	if w.ServiceAccount != "" {
		for _, msg := range validation.IsDNS1123Subdomain(w.ServiceAccount) {
			errs = append(errs, field.Invalid(child("service_account"), w.ServiceAccount, msg))
		}
		if len(w.ServiceAccountAnnotations) > 0 {
			errs = append(errs, field.Invalid(child("service_account_annotations"), "", "annotations go on the service account the provider creates; with service_account set it creates none: annotate that one instead"))
		}
	}
	return errs
}

// ours reports a label key the provider manages on composed objects.
func ours(key string, keys contract.Keys) bool {
	return strings.HasPrefix(key, keys.Domain+"/") || key == "app.kubernetes.io/name" || key == "app.kubernetes.io/managed-by"
}

// podSpec is the Workload's pod fields in the Kubernetes API's shape, for the templates.
type podSpec struct {
	Tolerations      []map[string]any
	ImagePullSecrets []map[string]string
	EnvFrom          []map[string]any
}

func (w Workload) podSpec() podSpec {
	var p podSpec
	for _, t := range w.Tolerations {
		m := map[string]any{}
		for k, v := range map[string]string{"key": t.Key, "operator": t.Operator, "value": t.Value, "effect": t.Effect} {
			if v != "" {
				m[k] = v
			}
		}
		if t.TolerationSeconds != nil {
			m["tolerationSeconds"] = *t.TolerationSeconds
		}
		p.Tolerations = append(p.Tolerations, m)
	}
	for _, s := range w.ImagePullSecrets {
		p.ImagePullSecrets = append(p.ImagePullSecrets, map[string]string{"name": s})
	}
	for _, e := range w.EnvFrom {
		m := map[string]any{}
		if e.ConfigMap != "" {
			m["configMapRef"] = map[string]string{"name": e.ConfigMap}
		} else {
			m["secretRef"] = map[string]string{"name": e.Secret}
		}
		if e.Prefix != "" {
			m["prefix"] = e.Prefix
		}
		p.EnvFrom = append(p.EnvFrom, m)
	}
	return p
}
