package spire

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kagenti/terraform-provider-kagenti/internal/kube"
)

// ClusterSPIFFEIDGVK is the SPIRE Controller Manager's ClusterSPIFFEID
// (github.com/spiffe/spire-controller-manager api/v1alpha1, config/crd/bases/
// spire.spiffe.io_clusterspiffeids.yaml). The type is not imported: its package pulls in
// controller-runtime and its webhooks and raises go-spiffe and spire-api-sdk, for a handful of
// JSON fields; clusterSPIFFEIDSpec below names the fields this package writes, as the CRD does.
var ClusterSPIFFEIDGVK = schema.GroupVersionKind{Group: "spire.spiffe.io", Version: "v1alpha1", Kind: "ClusterSPIFFEID"}

// namespaceNameLabel is the label the API server puts on every namespace: its name.
const namespaceNameLabel = "kubernetes.io/metadata.name"

// ClusterSPIFFEIDs registers workloads through the Kubernetes API instead of the SPIRE server's:
// each registration is a ClusterSPIFFEID, from which the SPIRE Controller Manager creates one
// entry per matching pod (parented to the agent of the pod's node). It has the method set of
// Client's entry API, with the object name as the registration id.
//
// A spec maps onto a ClusterSPIFFEID like this: the SPIFFE ID is the (literal) spiffeIDTemplate;
// the k8s:ns selector becomes a namespaceSelector on the namespace's name; every other selector
// (k8s:sa:<service account>, ...) is a workloadSelectorTemplate, so that only pods that match it
// get the SVID; the TTLs are ttl and jwtTtl. The parent is not the registrar's to choose: the
// controller manager parents each entry to the pod's node.
type ClusterSPIFFEIDs struct {
	Applier *kube.Applier
	// ClassName is spec.className, for controller managers that serve one class.
	ClassName string
	// Labels go on every object (owner labels).
	Labels map[string]string
}

// ClusterSPIFFEIDName is the object name of a SPIFFE ID's registration: deterministic, so that
// create is idempotent and a SPIFFE ID finds its object.
func ClusterSPIFFEIDName(spiffeID string) string {
	sum := sha256.Sum256([]byte(spiffeID))
	return "kagenti-" + hex.EncodeToString(sum[:])[:20]
}

func (c *ClusterSPIFFEIDs) ref(name string) kube.Ref {
	return kube.Ref{GVK: ClusterSPIFFEIDGVK, Name: name}
}

// Object renders a spec as a ClusterSPIFFEID named name.
func (c *ClusterSPIFFEIDs) Object(name string, spec EntrySpec) (*unstructured.Unstructured, error) {
	var ns string
	templates := []any{}
	for _, sel := range spec.Selectors {
		if v, ok := strings.CutPrefix(sel, "k8s:ns:"); ok {
			if ns != "" && ns != v {
				return nil, fmt.Errorf("spiffe id %s: selectors name two namespaces (%s, %s)", spec.SPIFFEID, ns, v)
			}
			ns = v
			continue
		}
		if strings.Contains(sel, "{{") {
			return nil, fmt.Errorf("spiffe id %s: selector %q would be read as a template by the SPIRE Controller Manager", spec.SPIFFEID, sel)
		}
		templates = append(templates, sel)
	}
	if ns == "" {
		return nil, fmt.Errorf("spiffe id %s: registration through ClusterSPIFFEID needs a k8s:ns:<namespace> selector", spec.SPIFFEID)
	}
	body := map[string]any{
		"spiffeIDTemplate":  spec.SPIFFEID,
		"namespaceSelector": map[string]any{"matchLabels": map[string]any{namespaceNameLabel: ns}},
	}
	if len(templates) > 0 {
		body["workloadSelectorTemplates"] = templates
	}
	if spec.X509SVIDTTL > 0 {
		body["ttl"] = spec.X509SVIDTTL.String()
	}
	if spec.JWTSVIDTTL > 0 {
		body["jwtTtl"] = spec.JWTSVIDTTL.String()
	}
	if c.ClassName != "" {
		body["className"] = c.ClassName
	}
	obj := &unstructured.Unstructured{Object: map[string]any{"spec": body}}
	obj.SetGroupVersionKind(ClusterSPIFFEIDGVK)
	obj.SetName(name)
	if len(c.Labels) > 0 {
		obj.SetLabels(c.Labels)
	}
	return obj, nil
}

// entryOf reads a ClusterSPIFFEID back as the spec it was rendered from.
func entryOf(obj *unstructured.Unstructured) (Entry, error) {
	e := Entry{ID: obj.GetName()}
	e.SPIFFEID, _, _ = unstructured.NestedString(obj.Object, "spec", "spiffeIDTemplate")
	if ns, ok, _ := unstructured.NestedString(obj.Object, "spec", "namespaceSelector", "matchLabels", namespaceNameLabel); ok {
		e.Selectors = append(e.Selectors, "k8s:ns:"+ns)
	}
	templates, _, _ := unstructured.NestedStringSlice(obj.Object, "spec", "workloadSelectorTemplates")
	e.Selectors = append(e.Selectors, templates...)
	sort.Strings(e.Selectors)
	for field, into := range map[string]*time.Duration{"ttl": &e.X509SVIDTTL, "jwtTtl": &e.JWTSVIDTTL} {
		s, ok, _ := unstructured.NestedString(obj.Object, "spec", field)
		if !ok || s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return e, fmt.Errorf("ClusterSPIFFEID %s: spec.%s %q: %w", obj.GetName(), field, s, err)
		}
		*into = d
	}
	return e, nil
}

// CreateEntry applies the registration of spec.SPIFFEID; one that exists is brought to the spec.
func (c *ClusterSPIFFEIDs) CreateEntry(ctx context.Context, spec EntrySpec) (Entry, error) {
	name := ClusterSPIFFEIDName(spec.SPIFFEID)
	if err := c.UpdateEntry(ctx, name, spec); err != nil {
		return Entry{}, err
	}
	return Entry{ID: name, EntrySpec: spec}, nil
}

// GetEntry reads a registration; ErrNotFound when it is gone.
func (c *ClusterSPIFFEIDs) GetEntry(ctx context.Context, id string) (Entry, error) {
	obj, err := c.Applier.Get(ctx, c.ref(id))
	if err != nil {
		return Entry{}, err
	}
	if obj == nil {
		return Entry{}, ErrNotFound
	}
	return entryOf(obj)
}

// UpdateEntry applies the spec to the registration named id.
func (c *ClusterSPIFFEIDs) UpdateEntry(ctx context.Context, id string, spec EntrySpec) error {
	obj, err := c.Object(id, spec)
	if err != nil {
		return err
	}
	_, err = c.Applier.Apply(ctx, obj)
	return err
}

// DeleteEntry deletes a registration (the controller manager then deletes its entries); one
// already gone counts as deleted.
func (c *ClusterSPIFFEIDs) DeleteEntry(ctx context.Context, id string) error {
	return c.Applier.Delete(ctx, c.ref(id))
}

// FindEntries returns the registration of a SPIFFE ID, if there is one.
func (c *ClusterSPIFFEIDs) FindEntries(ctx context.Context, spiffeID string) ([]Entry, error) {
	e, err := c.GetEntry(ctx, ClusterSPIFFEIDName(spiffeID))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if e.SPIFFEID != spiffeID {
		return nil, fmt.Errorf("ClusterSPIFFEID %s registers %s, not %s", e.ID, e.SPIFFEID, spiffeID)
	}
	return []Entry{e}, nil
}
