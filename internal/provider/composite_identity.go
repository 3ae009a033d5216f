package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
	"github.com/kagenti/terraform-provider-kagenti/internal/keycloak"
	"github.com/kagenti/terraform-provider-kagenti/internal/spire"
)

// The identity block of agents and tools: a SPIRE entry and Keycloak client keyed by the
// workload's SPIFFE ID (deterministic from namespace and name), so that ensure and remove are
// idempotent and need no ids in state.

// resolveIdentity fills the SPIFFE ID (from the SPIRE server's trust domain) and, unless
// planning, the realm's URLs the workload gets as env.
func (e *compositeEngine) resolveIdentity(ctx context.Context, in *composition.Input, planning bool) error {
	id := in.Identity
	if id == nil {
		return nil
	}
	td, err := e.data.TrustDomain(ctx)
	if errors.Is(err, errBackendNotConfigured) {
		return errors.New("identity needs SPIRE: set spire.trust_domain (all a plan needs) and spire.address or spire.registration = \"kubernetes\" " +
			"in the provider (or KAGENTI_SPIRE_*)")
	}
	if err != nil {
		return err
	}
	id.SPIFFEID = fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td.Name(), in.Namespace, in.ServiceAccountName(in.Name))
	id.WorkloadAPI = e.data.workloadAPI
	if cs := id.CardSigner; cs != nil && cs.Image == "" {
		cs.Image = e.data.defaultRouterImage()
	}
	if id.Client != nil && id.Client.Authentication == keycloak.AuthFederatedJWT && e.data.spireConfig.BundleEndpointURL == "" {
		return errors.New("identity.keycloak_client with federated-jwt needs Keycloak to fetch the SPIRE JWT keys: set spire.bundle_endpoint_url " +
			"in the provider (or KAGENTI_SPIRE_BUNDLE_ENDPOINT_URL), or use authentication = \"client-secret\"")
	}
	if id.Client == nil || planning {
		return nil
	}
	kc, err := e.data.Keycloak(ctx)
	if errors.Is(err, errBackendNotConfigured) {
		return errors.New("identity.keycloak_client needs Keycloak: set keycloak.url and credentials in the provider (or KAGENTI_KEYCLOAK_*)")
	}
	if err != nil {
		return err
	}
	info, err := kc.RealmInfo(ctx)
	if err != nil {
		return err
	}
	id.Client.Issuer, id.Client.JWKSURI, id.Client.TokenURL = info.Issuer, info.JWKSURI, info.TokenEndpoint
	return nil
}

func (e *compositeEngine) entrySpec(ctx context.Context, in composition.Input) spire.EntrySpec {
	td, _ := e.data.TrustDomain(ctx)
	parent := e.data.spireConfig.DefaultParentID
	switch {
	case e.data.spireConfig.kubernetes():
		parent = "" // the controller manager parents each entry to the pod's node
	case parent == "":
		parent = "spiffe://" + td.Name() + "/kagenti/cluster"
	}
	x509, err := time.ParseDuration(in.Identity.X509SVIDTTL)
	if err != nil {
		x509 = defaultX509SVIDTTL
	}
	jwt, err := time.ParseDuration(in.Identity.JWTSVIDTTL)
	if err != nil {
		jwt = defaultJWTSVIDTTL
	}
	return spire.EntrySpec{
		SPIFFEID: in.Identity.SPIFFEID, ParentID: parent,
		Selectors:   []string{"k8s:ns:" + in.Namespace, "k8s:sa:" + in.ServiceAccountName(in.Name)},
		X509SVIDTTL: x509, JWTSVIDTTL: jwt,
	}
}

// ensureIdentity registers the workload and sets up its client; prior is the identity applied
// before (grants it had that are gone now are revoked; an identity dropped entirely is removed).
// Allowed callers that have no client yet are returned as deferred: each gets its grant when its
// own client is created (claimDeferredGrants).
func (e *compositeEngine) ensureIdentity(ctx context.Context, in composition.Input, prior *composition.Identity) (deferred []string, err error) {
	err = e.ensureIdentityDeferring(ctx, in, prior, &deferred)
	return deferred, err
}

func (e *compositeEngine) ensureIdentityDeferring(ctx context.Context, in composition.Input, prior *composition.Identity, deferred *[]string) error {
	if !wantsClientSecret(in.Identity) {
		if err := e.deleteClientSecret(ctx, in.Namespace, in.Name, prior); err != nil {
			return err
		}
	}
	if in.Identity == nil {
		if prior != nil {
			return e.removeIdentity(ctx, prior.SPIFFEID, prior.Client != nil)
		}
		return nil
	}
	sc, _, err := e.data.Registrar(ctx)
	if err != nil {
		return err
	}
	spec := e.entrySpec(ctx, in)
	entries, err := sc.FindEntries(ctx, spec.SPIFFEID)
	if err != nil {
		return err
	}
	if len(entries) == 0 {
		_, err = sc.CreateEntry(ctx, spec)
	} else {
		err = sc.UpdateEntry(ctx, entries[0].ID, spec)
	}
	if err != nil {
		return err
	}
	c := in.Identity.Client
	if c == nil {
		if prior != nil && prior.Client != nil {
			kc, err := e.data.Keycloak(ctx)
			if err != nil {
				return err
			}
			return kc.RemoveWorkloadClient(ctx, prior.SPIFFEID)
		}
		return nil
	}
	kc, err := e.data.Keycloak(ctx)
	if err != nil {
		return err
	}
	td, _ := e.data.TrustDomain(ctx)
	w := keycloak.WorkloadClient{
		Spec: keycloak.ClientSpec{ClientID: spec.SPIFFEID, Description: fmt.Sprintf("%s %s/%s (managed by Kagenti)", in.Kind, in.Namespace, in.Name),
			Authentication: c.Authentication, TokenExchange: c.TokenExchange},
		TrustDomain: td.Name(), BundleEndpoint: e.data.spireConfig.BundleEndpointURL,
		Callers: c.AllowedCallers, Audiences: c.Audiences,
	}
	if prior != nil && prior.Client != nil {
		w.RevokeCallers, w.RevokeAudiences = minus(prior.Client.AllowedCallers, c.AllowedCallers), minus(prior.Client.Audiences, c.Audiences)
	}
	w.MissingCaller = func(id string) { *deferred = append(*deferred, id) }
	// A client new to Keycloak (or to this resource) may have been allowed by callees applied
	// before it: it claims those grants.
	claim := prior == nil || prior.Client == nil
	if !claim {
		_, err := kc.FindClient(ctx, spec.SPIFFEID)
		if err != nil && !errors.Is(err, keycloak.ErrNotFound) {
			return err
		}
		claim = err != nil
	}
	uuid, err := kc.EnsureWorkloadClient(ctx, w)
	if err != nil {
		return err
	}
	if claim {
		if err := e.claimDeferredGrants(ctx, kc, spec.SPIFFEID); err != nil {
			return err
		}
	}
	if c.Authentication == keycloak.AuthClientSecret {
		if diags := storeClientSecret(ctx, e.data, kc, uuid, spec.SPIFFEID, in.Namespace, contract.ClientSecretName(in.Name)); diags.HasError() {
			return fmt.Errorf("store the client secret of %s: %s", spec.SPIFFEID, diags[0].Detail())
		}
	}
	return nil
}

// deleteClientSecret deletes the Secret of a client-secret identity (one already gone counts as
// deleted); other identities have none.
func (e *compositeEngine) deleteClientSecret(ctx context.Context, namespace, name string, id *composition.Identity) error {
	if !wantsClientSecret(id) {
		return nil
	}
	applier, err := e.data.Applier()
	if err != nil {
		return err
	}
	return applier.DeleteSecret(ctx, namespace, contract.ClientSecretName(name))
}

// identityStatus reports whether the entry (with the wanted spec) and the client exist.
func (e *compositeEngine) identityStatus(ctx context.Context, in composition.Input) (entryInSync, clientExists bool, err error) {
	sc, _, err := e.data.Registrar(ctx)
	if err != nil {
		return false, false, err
	}
	want := e.entrySpec(ctx, in)
	entries, err := sc.FindEntries(ctx, want.SPIFFEID)
	if err != nil {
		return false, false, err
	}
	for _, got := range entries {
		entryInSync = entryInSync || (got.X509SVIDTTL == want.X509SVIDTTL && got.JWTSVIDTTL == want.JWTSVIDTTL && got.ParentID == want.ParentID)
	}
	if in.Identity.Client == nil {
		return entryInSync, false, nil
	}
	kc, err := e.data.Keycloak(ctx)
	if err != nil {
		return entryInSync, false, err
	}
	_, err = kc.FindClient(ctx, want.SPIFFEID)
	if errors.Is(err, keycloak.ErrNotFound) {
		return entryInSync, false, nil
	}
	return entryInSync, err == nil, err
}

// removeIdentity deletes every entry of the SPIFFE ID and, if it had one, the client.
func (e *compositeEngine) removeIdentity(ctx context.Context, spiffeID string, withClient bool) error {
	if spiffeID == "" {
		return nil
	}
	if withClient {
		kc, err := e.data.Keycloak(ctx)
		if err != nil {
			return err
		}
		if err := kc.RemoveWorkloadClient(ctx, spiffeID); err != nil {
			return err
		}
	}
	sc, _, err := e.data.Registrar(ctx)
	if err != nil {
		return err
	}
	entries, err := sc.FindEntries(ctx, spiffeID)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if err := sc.DeleteEntry(ctx, en.ID); err != nil {
			return err
		}
	}
	return nil
}

// identityObjects are the identity's parts in the objects attribute, so that a deleted entry or
// client shows in the plan like any composed object.
func identityObjects(ctx context.Context, in composition.Input, entryInSync, clientExists bool) []objectModel {
	if in.Identity == nil {
		return nil
	}
	mk := func(key, kind string, ok bool) objectModel {
		drift := []string{}
		if !ok {
			drift = []string{"(missing or changed)"}
		}
		dl, _ := types.ListValueFrom(ctx, types.StringType, drift)
		return objectModel{Key: types.StringValue(key), APIVersion: types.StringValue(kind + "/v1"), Kind: types.StringValue(kind),
			Namespace: types.StringValue(in.Namespace), Name: types.StringValue(in.Identity.SPIFFEID), InSync: types.BoolValue(ok), Drift: dl}
	}
	out := []objectModel{mk("spire-entry", "SpireEntry", entryInSync)}
	if in.Identity.Client != nil {
		out = append(out, mk("keycloak-client", "KeycloakClient", clientExists))
	}
	return out
}

func wantsClientSecret(id *composition.Identity) bool {
	return id != nil && id.Client != nil && id.Client.Authentication == keycloak.AuthClientSecret
}

// claimDeferredGrants grants a client the audiences of every agent and tool whose policy allows
// it: those applied before the client existed deferred the grant to it.
func (e *compositeEngine) claimDeferredGrants(ctx context.Context, kc *keycloak.Client, clientID string) error {
	applier, err := e.data.Applier()
	if err != nil {
		return err
	}
	keys := contract.NewKeys(e.data.labelDomain)
	services, err := applier.Typed().CoreV1().Services(metav1.NamespaceAll).List(ctx, metav1.ListOptions{LabelSelector: keys.Type()})
	if err != nil {
		return fmt.Errorf("list the agents and tools that may allow %s: %w", clientID, err)
	}
	for _, svc := range services.Items {
		raw := svc.Annotations[keys.Policy()]
		if raw == "" || !strings.Contains(raw, clientID) {
			continue
		}
		var p contract.Policy
		if json.Unmarshal([]byte(raw), &p) != nil || p.Audience == "" || !slices.Contains(p.AllowedCallers, clientID) {
			continue
		}
		if err := kc.GrantAudience(ctx, clientID, p.Audience); err != nil {
			return err
		}
	}
	return nil
}
