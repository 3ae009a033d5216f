package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

var _ datasource.DataSource = &agentCardDataSource{}

// NewAgentCardDataSource returns data.kagenti_agent_card.
func NewAgentCardDataSource() datasource.DataSource { return &agentCardDataSource{} }

// agentCardDataSource fetches an agent's A2A card through kagenti-router, as clients see it.
type agentCardDataSource struct{}

type agentCardDataSourceModel struct {
	RouterURL   types.String `tfsdk:"router_url"`
	Namespace   types.String `tfsdk:"namespace"`
	Name        types.String `tfsdk:"name"`
	URL         types.String `tfsdk:"url"`
	Description types.String `tfsdk:"description"`
	Version     types.String `tfsdk:"version"`
	Skills      types.List   `tfsdk:"skills"`
	Card        types.String `tfsdk:"card"`
	Verified    types.String `tfsdk:"card_verification"`
}

func (d *agentCardDataSource) Metadata(_ context.Context, req datasource.MetadataRequest, resp *datasource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_agent_card"
}

func (d *agentCardDataSource) Schema(_ context.Context, _ datasource.SchemaRequest, resp *datasource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Fetches an agent's A2A card through kagenti-router (`<router_url>/a2a/<namespace>/<name>/.well-known/agent-card.json`), " +
			"with its URLs rewritten to the router — what an A2A client would discover.",
		Attributes: map[string]schema.Attribute{
			"router_url": schema.StringAttribute{
				MarkdownDescription: "The router's URL, e.g. `kagenti_platform.main.router_url`.", Required: true,
				Validators: []validator.String{stringvalidator.RegexMatches(httpURL, "must be an http(s) URL")},
			},
			"namespace":   schema.StringAttribute{MarkdownDescription: "Namespace of the agent.", Required: true},
			"name":        schema.StringAttribute{MarkdownDescription: "Name of the agent.", Required: true},
			"url":         schema.StringAttribute{MarkdownDescription: "The agent's A2A endpoint on the router.", Computed: true},
			"description": schema.StringAttribute{MarkdownDescription: "Description from the card.", Computed: true},
			"version":     schema.StringAttribute{MarkdownDescription: "Version from the card.", Computed: true},
			"skills":      schema.ListAttribute{MarkdownDescription: "Skill ids.", Computed: true, ElementType: types.StringType},
			"card":        schema.StringAttribute{MarkdownDescription: "The whole card (JSON).", Computed: true},
			"card_verification": schema.StringAttribute{
				MarkdownDescription: "Whether the card is bound to the agent's identity, as the router found: `verified` (signed with the " +
					"X509-SVID of the identity registered for the agent), `off` (the router does not verify cards: " +
					"`router_settings.card_verification`), or `failed: <why>` (a permissive router serves it anyway). A strict router " +
					"serves no card that fails, and reading it is an error.",
				Computed: true,
			},
		},
	}
}

func (d *agentCardDataSource) Read(ctx context.Context, req datasource.ReadRequest, resp *datasource.ReadResponse) {
	var m agentCardDataSourceModel
	resp.Diagnostics.Append(req.Config.Get(ctx, &m)...)
	if resp.Diagnostics.HasError() {
		return
	}
	u := strings.TrimRight(m.RouterURL.ValueString(), "/") + "/a2a/" + m.Namespace.ValueString() + "/" + m.Name.ValueString() + "/.well-known/agent-card.json"
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		resp.Diagnostics.AddAttributeError(path.Root("router_url"), "Invalid Router URL", err.Error())
		return
	}
	hresp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		resp.Diagnostics.AddError("Router Unreachable", fmt.Sprintf("Fetching %s failed; check router_url and that the router runs.\n\nOriginal Error: %v", u, err))
		return
	}
	defer hresp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if hresp.StatusCode == http.StatusNotFound {
		resp.Diagnostics.AddError("Agent Not Found", fmt.Sprintf("The router at %s serves no A2A agent %s/%s.", m.RouterURL.ValueString(), m.Namespace.ValueString(), m.Name.ValueString()))
		return
	}
	if hresp.StatusCode != http.StatusOK {
		if strings.Contains(string(body), "is not verified") {
			resp.Diagnostics.AddError("Card Not Verified", fmt.Sprintf("The router at %s verifies cards strictly, and the card of %s/%s "+
				"does not verify: the agent must serve its card signed with the X509-SVID of its own identity.\n\n%s",
				m.RouterURL.ValueString(), m.Namespace.ValueString(), m.Name.ValueString(), strings.TrimSpace(string(body))))
			return
		}
		resp.Diagnostics.AddError("Card Not Served", fmt.Sprintf("GET %s: %s", u, hresp.Status))
		return
	}
	m.Verified = types.StringValue(hresp.Header.Get(contract.CardVerificationHeader))
	if m.Verified.ValueString() == "" {
		m.Verified = types.StringValue(contract.CardVerificationOff)
	}
	var card struct {
		URL         string `json:"url"`
		Description string `json:"description"`
		Version     string `json:"version"`
		Skills      []struct {
			ID string `json:"id"`
		} `json:"skills"`
	}
	if err := json.Unmarshal(body, &card); err != nil {
		resp.Diagnostics.AddError("Card Not JSON", fmt.Sprintf("GET %s: %v", u, err))
		return
	}
	skills := []string{}
	for _, s := range card.Skills {
		skills = append(skills, s.ID)
	}
	m.URL, m.Description, m.Version, m.Card = types.StringValue(card.URL), optStr(card.Description), optStr(card.Version), types.StringValue(string(body))
	m.Skills, _ = types.ListValueFrom(ctx, types.StringType, skills)
	resp.Diagnostics.Append(resp.State.Set(ctx, &m)...)
}
