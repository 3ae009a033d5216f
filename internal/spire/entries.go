package spire

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	entryv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/entry/v1"
	svidv1 "github.com/spiffe/spire-api-sdk/proto/spire/api/server/svid/v1"
	"github.com/spiffe/spire-api-sdk/proto/spire/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// EntrySpec is a workload registration entry.
type EntrySpec struct {
	SPIFFEID string
	ParentID string
	// Selectors are "type:value", e.g. "k8s:ns:team1". Order does not matter.
	Selectors   []string
	X509SVIDTTL time.Duration
	JWTSVIDTTL  time.Duration
}

// Entry is a registration entry as the server holds it.
type Entry struct {
	ID string
	EntrySpec
}

// ErrNotFound says the entry does not exist.
var ErrNotFound = errors.New("entry not found")

func (s EntrySpec) toProto() (*types.Entry, error) {
	id, err := spiffeid.FromString(s.SPIFFEID)
	if err != nil {
		return nil, fmt.Errorf("spiffe id %q: %w", s.SPIFFEID, err)
	}
	parent, err := spiffeid.FromString(s.ParentID)
	if err != nil {
		return nil, fmt.Errorf("parent id %q: %w", s.ParentID, err)
	}
	e := &types.Entry{
		SpiffeId:    &types.SPIFFEID{TrustDomain: id.TrustDomain().Name(), Path: id.Path()},
		ParentId:    &types.SPIFFEID{TrustDomain: parent.TrustDomain().Name(), Path: parent.Path()},
		X509SvidTtl: int32(s.X509SVIDTTL / time.Second),
		JwtSvidTtl:  int32(s.JWTSVIDTTL / time.Second),
	}
	for _, sel := range s.Selectors {
		typ, value, ok := strings.Cut(sel, ":")
		if !ok || typ == "" || value == "" {
			return nil, fmt.Errorf("selector %q must be type:value, e.g. k8s:ns:team1", sel)
		}
		e.Selectors = append(e.Selectors, &types.Selector{Type: typ, Value: value})
	}
	return e, nil
}

func fromProto(e *types.Entry) Entry {
	out := Entry{ID: e.Id, EntrySpec: EntrySpec{
		SPIFFEID:    idString(e.SpiffeId),
		ParentID:    idString(e.ParentId),
		X509SVIDTTL: time.Duration(e.X509SvidTtl) * time.Second,
		JWTSVIDTTL:  time.Duration(e.JwtSvidTtl) * time.Second,
	}}
	for _, s := range e.Selectors {
		out.Selectors = append(out.Selectors, s.Type+":"+s.Value)
	}
	sort.Strings(out.Selectors)
	return out
}

func idString(id *types.SPIFFEID) string {
	if id == nil {
		return ""
	}
	return "spiffe://" + id.TrustDomain + id.Path
}

// CreateEntry registers a workload. An identical entry that already exists (same SPIFFE ID,
// parent and selectors) is adopted and brought to the spec: creation is idempotent, so an
// apply that failed after this step can be repeated.
func (c *Client) CreateEntry(ctx context.Context, spec EntrySpec) (Entry, error) {
	e, err := spec.toProto()
	if err != nil {
		return Entry{}, err
	}
	resp, err := entryv1.NewEntryClient(c.conn).BatchCreateEntry(ctx, &entryv1.BatchCreateEntryRequest{Entries: []*types.Entry{e}})
	if err != nil {
		return Entry{}, fmt.Errorf("create SPIRE entry %s: %w", spec.SPIFFEID, err)
	}
	r := resp.Results[0]
	switch codes.Code(r.Status.Code) {
	case codes.OK:
		return fromProto(r.Entry), nil
	case codes.AlreadyExists:
		if err := c.UpdateEntry(ctx, r.Entry.Id, spec); err != nil {
			return Entry{}, err
		}
		return Entry{ID: r.Entry.Id, EntrySpec: spec}, nil
	default:
		return Entry{}, fmt.Errorf("create SPIRE entry %s: %s", spec.SPIFFEID, r.Status.Message)
	}
}

// GetEntry reads an entry; ErrNotFound when it is gone.
func (c *Client) GetEntry(ctx context.Context, id string) (Entry, error) {
	e, err := entryv1.NewEntryClient(c.conn).GetEntry(ctx, &entryv1.GetEntryRequest{Id: id})
	if status.Code(err) == codes.NotFound {
		return Entry{}, ErrNotFound
	}
	if err != nil {
		return Entry{}, fmt.Errorf("get SPIRE entry %s: %w", id, err)
	}
	return fromProto(e), nil
}

// UpdateEntry sets every field of the spec on an existing entry.
func (c *Client) UpdateEntry(ctx context.Context, id string, spec EntrySpec) error {
	e, err := spec.toProto()
	if err != nil {
		return err
	}
	e.Id = id
	resp, err := entryv1.NewEntryClient(c.conn).BatchUpdateEntry(ctx, &entryv1.BatchUpdateEntryRequest{
		Entries: []*types.Entry{e},
		InputMask: &types.EntryMask{
			SpiffeId: true, ParentId: true, Selectors: true, X509SvidTtl: true, JwtSvidTtl: true,
		},
	})
	if err != nil {
		return fmt.Errorf("update SPIRE entry %s: %w", id, err)
	}
	if st := resp.Results[0].Status; codes.Code(st.Code) != codes.OK {
		if codes.Code(st.Code) == codes.NotFound {
			return ErrNotFound
		}
		return fmt.Errorf("update SPIRE entry %s: %s", id, st.Message)
	}
	return nil
}

// DeleteEntry deletes an entry; one already gone counts as deleted.
func (c *Client) DeleteEntry(ctx context.Context, id string) error {
	resp, err := entryv1.NewEntryClient(c.conn).BatchDeleteEntry(ctx, &entryv1.BatchDeleteEntryRequest{Ids: []string{id}})
	if err != nil {
		return fmt.Errorf("delete SPIRE entry %s: %w", id, err)
	}
	if st := resp.Results[0].Status; codes.Code(st.Code) != codes.OK && codes.Code(st.Code) != codes.NotFound {
		return fmt.Errorf("delete SPIRE entry %s: %s", id, st.Message)
	}
	return nil
}

// FindEntries lists the entries of a SPIFFE ID.
func (c *Client) FindEntries(ctx context.Context, spiffeID string) ([]Entry, error) {
	id, err := spiffeid.FromString(spiffeID)
	if err != nil {
		return nil, err
	}
	resp, err := entryv1.NewEntryClient(c.conn).ListEntries(ctx, &entryv1.ListEntriesRequest{
		Filter: &entryv1.ListEntriesRequest_Filter{BySpiffeId: &types.SPIFFEID{TrustDomain: id.TrustDomain().Name(), Path: id.Path()}},
	})
	if err != nil {
		return nil, fmt.Errorf("list SPIRE entries of %s: %w", spiffeID, err)
	}
	var out []Entry
	for _, e := range resp.Entries {
		out = append(out, fromProto(e))
	}
	return out, nil
}

// MintJWTSVID has the server sign a JWT-SVID for any SPIFFE ID of its trust domain. It stands in
// for a workload's agent where none runs (tests, the router's own identity off-cluster).
func (c *Client) MintJWTSVID(ctx context.Context, spiffeID string, audience []string, ttl time.Duration) (string, error) {
	id, err := spiffeid.FromString(spiffeID)
	if err != nil {
		return "", err
	}
	resp, err := svidv1.NewSVIDClient(c.conn).MintJWTSVID(ctx, &svidv1.MintJWTSVIDRequest{
		Id:       &types.SPIFFEID{TrustDomain: id.TrustDomain().Name(), Path: id.Path()},
		Audience: audience,
		Ttl:      int32(ttl / time.Second),
	})
	if err != nil {
		return "", fmt.Errorf("mint JWT-SVID for %s: %w", spiffeID, err)
	}
	return resp.Svid.Token, nil
}
