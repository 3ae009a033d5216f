package provider

// The render → apply → wait → observe cycle of a composite, and reading back what it applied.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kagenti/terraform-provider-kagenti/internal/access"
	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
)

// compositeEngine runs the render → apply → wait → observe cycle for one composite kind.
type compositeEngine struct {
	data *providerData
	kind composition.Kind
}

func (e *compositeEngine) selector(in composition.Input) kube.CompositeSelector {
	keys := contract.NewKeys(e.data.labelDomain)
	return kube.CompositeSelector{
		Namespace: in.Namespace,
		Labels:    map[string]string{keys.Type(): string(e.kind), keys.Composite(): in.Name},
		Kinds:     composition.ComposedKinds(),
	}
}

func (e *compositeEngine) render(in composition.Input) (*composition.Output, error) {
	in.Kind = e.kind
	in.LabelDomain = e.data.labelDomain
	// Where workloads exchange tokens (their NetworkPolicy lets them reach it): the provider's
	// setting, not part of the stored spec, so every rendering (plan, apply, read) has it.
	in.IdentityProviderURL = e.data.keycloakConfig.URL
	return e.data.renderer.Render(in)
}

// planComputed fills the computed attributes a plan can know: id, url, revision and the
// objects, all in sync.
func (e *compositeEngine) planComputed(ctx context.Context, in composition.Input, m *compositeModel) (*composition.Output, diag.Diagnostics) {
	out, err := e.render(in)
	if err != nil {
		return nil, renderErrorDiags(err, "Invalid "+titleKind(e.kind)+" Configuration")
	}
	m.ID = types.StringValue(in.Namespace + "/" + in.Name)
	m.URL = types.StringValue(out.URL)
	m.Revision = types.StringValue(out.Revision)
	var diags diag.Diagnostics
	m.Objects, diags = plannedObjects(ctx, out, identityObjects(ctx, in, true, true)...)
	setIdentityIDs(in, m)
	if !callersKnown(ctx, m.Identity) {
		// A caller created in the same apply (an identity's client id is known once it exists).
		m.Access = types.ListUnknown(types.StringType)
	}
	return out, diags
}

// setIdentityIDs sets the computed spiffe_id and client_id from a resolved input, and the
// access edges they lead to.
func setIdentityIDs(in composition.Input, m *compositeModel) {
	m.SPIFFEID, m.ClientID = types.StringNull(), types.StringNull()
	if id := in.Identity; id != nil && id.SPIFFEID != "" {
		m.SPIFFEID = types.StringValue(id.SPIFFEID)
		if id.Client != nil {
			m.ClientID = types.StringValue(id.SPIFFEID)
		}
	}
	m.Access = accessValue(compositeCallee(in))
}

// compositeCallee is an agent or tool as the graph sees it: always served by the router.
func compositeCallee(in composition.Input) access.Callee {
	c := access.Callee{Namespace: in.Namespace, Name: in.Name, Routed: true, Protocol: in.Protocol, ExposeAsTool: in.ExposeAsTool}
	if in.Kind == composition.KindTool {
		c.Protocol = composition.ToolProtocol
	}
	if id := in.Identity; id != nil && id.Client != nil {
		c.Client, c.AllowedCallers = true, id.Client.AllowedCallers
	}
	return c
}

// applied is what an apply learnt about the cluster, so that the state is written without
// reading everything again.
type applied struct {
	objects    map[kube.Ref]*unstructured.Unstructured
	deployment *kube.DeploymentStatus
}

// apply renders, applies and (unless creating) prunes, then waits for the rollout. It returns the
// output even on failure so that the caller can record what exists.
func (e *compositeEngine) apply(ctx context.Context, in composition.Input, wait, creating bool) (*composition.Output, *applied, error) {
	out, err := e.render(in)
	if err != nil {
		return nil, nil, err
	}
	applier, err := e.data.Applier()
	if err != nil {
		return out, nil, err
	}
	live, err := syncComposed(ctx, applier, e.selector(in), out, creating)
	if err != nil {
		return out, nil, err
	}
	result := &applied{objects: live}
	if wait && in.Image != "" {
		status, err := waitRollout(ctx, applier, in.Namespace, in.Name)
		if err != nil {
			return out, nil, err
		}
		result.deployment = &status
	}
	return out, result, nil
}

// observe reads the live objects of a rendered output into the computed attributes (using what
// an apply already returned, when given). It reports whether any object exists at all, and the
// objects out of sync ("Kind ns/name: field, field").
func (e *compositeEngine) observe(ctx context.Context, in composition.Input, out *composition.Output, m *compositeModel, known *applied) (bool, []string, diag.Diagnostics) {
	var diags diag.Diagnostics
	applier, err := e.data.Applier()
	if err != nil {
		diags.Append(kubernetesAPIError("reading "+in.Namespace+"/"+in.Name, err))
		return false, nil, diags
	}
	if known == nil {
		known = &applied{}
	}
	obs, outOfSync, err := observeComposed(ctx, applier, out, known.objects)
	if err != nil {
		diags.Append(kubernetesAPIError("reading "+in.Namespace+"/"+in.Name, err))
		return false, nil, diags
	}
	anyExists := false
	for _, o := range obs {
		anyExists = anyExists || o.Exists
	}
	var extra []objectModel
	if in.Identity != nil {
		entryOK, clientOK, err := e.identityStatus(ctx, in)
		if err != nil {
			diags.AddError("Identity Unreadable", fmt.Sprintf("Reading the identity of %s/%s from SPIRE and Keycloak failed.\n\nOriginal Error: %v", in.Namespace, in.Name, err))
			return anyExists, outOfSync, diags
		}
		extra = identityObjects(ctx, in, entryOK, clientOK)
	}
	m.Objects, diags = objectsValue(ctx, out, obs, extra...)
	setIdentityIDs(in, m)
	m.ReadyReplicas = types.Int64Value(0)
	if in.Image != "" {
		status := known.deployment
		observed := false
		for _, o := range obs {
			if status == nil && o.Ref.GVK.Kind == "Deployment" && o.Ref.Name == in.Name {
				observed = true
				if o.Live != nil {
					if status, err = kube.DeploymentStatusOf(o.Live); err != nil {
						diags.Append(kubernetesAPIError("reading Deployment "+in.Namespace+"/"+in.Name, err))
						return anyExists, outOfSync, diags
					}
				}
			}
		}
		if status == nil && !observed {
			if status, err = applier.ReadDeployment(ctx, in.Namespace, in.Name); err != nil {
				diags.Append(kubernetesAPIError("reading Deployment "+in.Namespace+"/"+in.Name, err))
				return anyExists, outOfSync, diags
			}
		}
		if status != nil {
			m.ReadyReplicas = types.Int64Value(int64(status.ReadyReplicas))
		}
	}
	return anyExists, outOfSync, diags
}

func (e *compositeEngine) delete(ctx context.Context, in composition.Input) error {
	applier, err := e.data.Applier()
	if err != nil {
		return err
	}
	return applier.DeleteAll(ctx, e.selector(in))
}

func objectsValue(ctx context.Context, out *composition.Output, obs []kube.Observation, extra ...objectModel) (types.List, diag.Diagnostics) {
	var diags diag.Diagnostics
	objs := make([]objectModel, 0, len(out.Objects))
	for i, o := range out.Objects {
		drift := []string{}
		inSync := true
		if i < len(obs) {
			inSync = obs[i].InSync()
			if !obs[i].Exists {
				drift = []string{"(missing)"}
			} else if obs[i].Drift != nil {
				drift = obs[i].Drift
			}
		}
		dl, d := types.ListValueFrom(ctx, types.StringType, drift)
		diags.Append(d...)
		objs = append(objs, objectModel{
			Key: types.StringValue(o.Key), APIVersion: types.StringValue(o.Object.GetAPIVersion()),
			Kind: types.StringValue(o.Object.GetKind()), Namespace: types.StringValue(o.Object.GetNamespace()),
			Name: types.StringValue(o.Object.GetName()), InSync: types.BoolValue(inSync), Drift: dl,
		})
	}
	objs = append(objs, extra...)
	list, d := types.ListValueFrom(ctx, types.ObjectType{AttrTypes: objectAttrTypes}, objs)
	diags.Append(d...)
	return list, diags
}

// storedSpecError is an input last applied that cannot be read back: private state, or the spec
// annotation of the composite's Service (missing, or not this provider's JSON).
type storedSpecError struct {
	// service is "ns/name" when the spec came from the Service, "" for private state.
	service, annotation string
	err                 error
}

func (e *storedSpecError) Error() string {
	if e.service == "" {
		return "private state: " + e.err.Error()
	}
	return fmt.Sprintf("Service %s annotation %s: %v", e.service, e.annotation, e.err)
}

func (e *storedSpecError) Unwrap() error { return e.err }

// foreignServiceError is a Service, found by import, that is not a composite of the kind
// imported (another kind's, or none of ours).
type foreignServiceError struct {
	service, label, value string
}

func (e *foreignServiceError) Error() string {
	return fmt.Sprintf("Service %s is not ours: label %s=%q", e.service, e.label, e.value)
}

// readAppliedInput finds the input last applied: from private state, else (import) from the
// spec annotation of the composite's Service. nil means the composite is gone. Errors about
// what is stored are *storedSpecError or *foreignServiceError; others come from the API.
func (e *compositeEngine) readAppliedInput(ctx context.Context, private []byte, namespace, name string) (*composition.Input, error) {
	if len(private) > 0 {
		var in composition.Input
		if err := json.Unmarshal(private, &in); err != nil {
			return nil, &storedSpecError{err: err}
		}
		return &in, nil
	}
	applier, err := e.data.Applier()
	if err != nil {
		return nil, err
	}
	svc, err := applier.Get(ctx, kube.Ref{GVK: serviceGVK, Namespace: namespace, Name: name})
	if err != nil || svc == nil {
		return nil, err
	}
	keys := contract.NewKeys(e.data.labelDomain)
	ref := namespace + "/" + name
	if got := svc.GetLabels()[keys.Type()]; got != string(e.kind) {
		return nil, &foreignServiceError{service: ref, label: keys.Type(), value: got}
	}
	spec := svc.GetAnnotations()[keys.Spec()]
	if spec == "" {
		return nil, &storedSpecError{service: ref, annotation: keys.Spec(), err: errors.New("missing")}
	}
	var in composition.Input
	if err := json.Unmarshal([]byte(spec), &in); err != nil {
		return nil, &storedSpecError{service: ref, annotation: keys.Spec(), err: err}
	}
	return &in, nil
}

// readInputFailed is the diagnostic of a readAppliedInput error.
func readInputFailed(kind composition.Kind, namespace, name string, err error) diag.Diagnostic {
	var spec *storedSpecError
	var foreign *foreignServiceError
	switch {
	case errors.As(err, &foreign):
		return foreignService(titleKind(kind), string(kind), foreign.service, foreign.label, foreign.value)
	case errors.As(err, &spec):
		return storedSpecUnreadable(string(kind), namespace+"/"+name, spec)
	default:
		return kubernetesAPIError("reading "+namespace+"/"+name, err)
	}
}

func titleKind(k composition.Kind) string {
	switch k {
	case composition.KindTool:
		return "Tool"
	case "platform":
		return "Platform"
	}
	return "Agent"
}

// parseCompositeID splits an import ID "<namespace>/<name>".
func parseCompositeID(id string) (namespace, name string, err error) {
	if !compositeIDRe.MatchString(id) {
		return "", "", fmt.Errorf("import ID %q must be <namespace>/<name>, e.g. team1/weather-service", id)
	}
	namespace, name, _ = strings.Cut(id, "/")
	return namespace, name, nil
}

// importEnvValues fills the env values of an imported input, which the Service does not carry
// (composition.Input.Published), from the Deployment's container.
func (e *compositeEngine) importEnvValues(ctx context.Context, in *composition.Input) error {
	if len(in.Env) == 0 || in.Image == "" {
		return nil
	}
	applier, err := e.data.Applier()
	if err != nil {
		return err
	}
	d, err := applier.Get(ctx, kube.Ref{GVK: schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}, Namespace: in.Namespace, Name: in.Name})
	if err != nil || d == nil {
		return err
	}
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		cm, _ := c.(map[string]any)
		if cm["name"] != string(e.kind) {
			continue
		}
		env, _ := cm["env"].([]any)
		for _, v := range env {
			vm, _ := v.(map[string]any)
			name, _ := vm["name"].(string)
			if _, ours := in.Env[name]; ours {
				value, _ := vm["value"].(string)
				in.Env[name] = value
			}
		}
	}
	return nil
}
