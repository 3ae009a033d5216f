package keycloak

import (
	"context"
	"errors"
	"fmt"
)

// WorkloadClient is everything Keycloak holds for one workload identity.
type WorkloadClient struct {
	Spec ClientSpec
	// TrustDomain and BundleEndpoint set up the SPIFFE identity provider (federated-jwt).
	TrustDomain, BundleEndpoint string
	// Callers may obtain tokens for this workload; Audiences are the targets this workload may
	// obtain tokens for. Both are client ids.
	Callers, Audiences []string
	// RevokeCallers and RevokeAudiences were granted before and are no longer wanted.
	RevokeCallers, RevokeAudiences []string
	// MissingCaller, when set, is told of each caller that has no client yet, which is then
	// skipped instead of failing: the caller gets its grant when its own client is created
	// (an agent and a tool that allow each other cannot both be created first).
	MissingCaller func(clientID string)
}

// EnsureWorkloadClient brings the SPIFFE identity provider, the client, its audience scope and
// its grants to the spec. Every step is idempotent, so a run that failed half way is finished
// by the next. It returns the client's UUID.
func (c *Client) EnsureWorkloadClient(ctx context.Context, w WorkloadClient) (string, error) {
	spec := w.Spec
	if spec.Authentication == AuthFederatedJWT {
		if w.BundleEndpoint == "" {
			return "", errors.New("federated-jwt needs the SPIRE bundle endpoint URL (provider spire.bundle_endpoint_url)")
		}
		alias, err := c.EnsureSpiffeIdentityProvider(ctx, w.TrustDomain, w.BundleEndpoint)
		if err != nil {
			return "", err
		}
		spec.IdentityProvider = alias
	}
	uuid, err := c.CreateClient(ctx, spec)
	if err != nil {
		return "", err
	}
	if _, err := c.EnsureAudienceScope(ctx, spec.ClientID); err != nil {
		return uuid, err
	}
	for _, caller := range w.Callers {
		err := c.GrantAudience(ctx, caller, spec.ClientID)
		if errors.Is(err, ErrNotFound) && w.MissingCaller != nil {
			w.MissingCaller(caller)
			continue
		}
		if err != nil {
			return uuid, err
		}
	}
	for _, aud := range w.Audiences {
		if err := c.GrantAudience(ctx, spec.ClientID, aud); err != nil {
			return uuid, err
		}
	}
	for _, caller := range w.RevokeCallers {
		if err := c.RevokeAudience(ctx, caller, spec.ClientID); err != nil {
			return uuid, err
		}
	}
	for _, aud := range w.RevokeAudiences {
		if err := c.RevokeAudience(ctx, spec.ClientID, aud); err != nil {
			return uuid, err
		}
	}
	return uuid, nil
}

// RemoveWorkloadClient deletes a workload's audience scope and client (by client id); what is
// already gone counts as removed.
func (c *Client) RemoveWorkloadClient(ctx context.Context, clientID string) error {
	if err := c.DeleteAudienceScope(ctx, clientID); err != nil {
		return err
	}
	uuid, err := c.FindClient(ctx, clientID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := c.DeleteClient(ctx, uuid); err != nil {
		return fmt.Errorf("delete Keycloak client %s: %w", clientID, err)
	}
	return nil
}
