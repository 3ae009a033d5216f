package provider

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-timeouts/resource/timeouts"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	rschema "github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// urlValidator checks an absolute URL with one of a few schemes and a host.
type urlValidator struct {
	schemes []string
	example string
}

// absoluteURL accepts an absolute URL with one of schemes and a host, such as example.
func absoluteURL(example string, schemes ...string) validator.String {
	return urlValidator{schemes: schemes, example: example}
}

func (v urlValidator) Description(context.Context) string {
	return fmt.Sprintf("must be an absolute %s URL with a host, such as %s", strings.Join(v.schemes, " or "), v.example)
}

func (v urlValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v urlValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s := req.ConfigValue.ValueString()
	u, err := url.Parse(s)
	if err == nil && u.IsAbs() && slices.Contains(v.schemes, u.Scheme) && u.Hostname() != "" {
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid URL", fmt.Sprintf("%s %s, got %q.", req.Path, v.Description(ctx), s))
}

// timeoutValidator checks an operation timeout: a duration Go parses, and above zero (a zero
// or negative one would fail every apply at once, after the plan said all was well).
type timeoutValidator struct{}

func (timeoutValidator) Description(context.Context) string {
	return "must be a positive duration such as 30s, 10m or 1h30m"
}

func (v timeoutValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v timeoutValidator) ValidateString(ctx context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if d, err := time.ParseDuration(req.ConfigValue.ValueString()); err == nil && d > 0 {
		return
	}
	// Terraform shows a nested attribute's error at the resource, so the detail names it.
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid Timeout",
		fmt.Sprintf("%s %s, got %q.", req.Path, v.Description(ctx), req.ConfigValue.ValueString()))
}

// timeoutsAttribute is the timeouts attribute of the framework's timeouts package, with our
// validator (whose error names the attribute) and a description per operation. defaults gives
// each operation's default timeout.
func timeoutsAttribute(ctx context.Context, defaults map[string]time.Duration) rschema.Attribute {
	opts := timeouts.Opts{}
	for op := range defaults {
		switch op {
		case "create":
			opts.Create = true
		case "update":
			opts.Update = true
		case "delete":
			opts.Delete = true
		}
	}
	attr := timeouts.Attributes(ctx, opts).(rschema.SingleNestedAttribute)
	attr.MarkdownDescription = "How long each operation may take, waits included, as a duration such as `30s`, `10m` or `1h30m`."
	for op, d := range defaults {
		s := attr.Attributes[op].(rschema.StringAttribute)
		s.MarkdownDescription = fmt.Sprintf("Timeout of %s (default `%s`).", op, formatDuration(d))
		s.Description = ""
		s.Validators = []validator.String{timeoutValidator{}}
		attr.Attributes[op] = s
	}
	return attr
}

// operationTimeout reads one operation's timeout (def when unset). A value only known at apply
// that is not a duration is reported on its attribute.
func operationTimeout(ctx context.Context, t timeouts.Value, op string, def time.Duration) (time.Duration, diag.Diagnostics) {
	var get func(context.Context, time.Duration) (time.Duration, diag.Diagnostics)
	switch op {
	case "create":
		get = t.Create
	case "update":
		get = t.Update
	default:
		get = t.Delete
	}
	d, diags := get(ctx, def)
	if !diags.HasError() && d > 0 {
		return d, nil
	}
	p := path.Root("timeouts").AtName(op)
	var out diag.Diagnostics
	out.AddAttributeError(p, "Invalid Timeout", fmt.Sprintf("%s %s, got %s.", p, timeoutValidator{}.Description(ctx), t.Object.Attributes()[op]))
	return def, out
}
