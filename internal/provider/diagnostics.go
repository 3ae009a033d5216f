package provider

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kagenti/terraform-provider-kagenti/internal/composition"
)

// Named diagnostic constructors: a fixed Title-Case summary; the detail says what was being
// done, what to do about it, then the original error.

func unexpectedConfigureType(got any) diag.Diagnostic {
	return diag.NewErrorDiagnostic("Unexpected Configure Type",
		fmt.Sprintf("Expected *provider.providerData, got %T. Please report this issue to the provider developers.", got))
}

// kubernetesAPIError is the diagnostic for a Kubernetes API call that failed: a permission the
// credentials lack (the API answered Forbidden), or the API not reached.
func kubernetesAPIError(doing string, err error) diag.Diagnostic {
	if apierrors.IsForbidden(err) {
		// The API answered: the credentials lack a permission, and the message names it.
		return diag.NewErrorDiagnostic("Kubernetes Permission Denied",
			fmt.Sprintf("While %s the Kubernetes API refused the provider's credentials. Grant the identity of the provider's "+
				"kubernetes block the verb and resource the message names (see Permissions in the provider's documentation), "+
				"or use other credentials.\n\nOriginal Error: %v", doing, err))
	}
	return diag.NewErrorDiagnostic("Kubernetes API Unreachable",
		fmt.Sprintf("While %s the provider could not reach the Kubernetes API. Check the provider's kubernetes block "+
			"(config_path, config_context, host, token, ...) or KUBECONFIG, and that the cluster is up.\n\nOriginal Error: %v", doing, err))
}

func spireUnreachable(doing string, err error) diag.Diagnostic {
	if errors.Is(err, errBackendNotConfigured) {
		return spireNotConfigured(doing)
	}
	return diag.NewErrorDiagnostic("SPIRE Server Unreachable",
		fmt.Sprintf("While %s the provider could not register or read identities. Check the provider's spire block: "+
			"registration, and spire.address (KAGENTI_SPIRE_ADDRESS: a unix:// socket the provider may open, or host:port with "+
			"x509_svid_file/x509_svid_key_file/bundle_file or x509_svid_workload_api for an admin X509-SVID) or, with "+
			"registration = \"kubernetes\", the kubernetes block; and spire.trust_domain.\n\nOriginal Error: %v", doing, err))
}

// spireNotConfigured: an identity needs a trust domain (plan) or a way to register (apply), and
// the spire block gives neither.
func spireNotConfigured(doing string) diag.Diagnostic {
	return diag.NewErrorDiagnostic("SPIRE Not Configured",
		fmt.Sprintf("While %s the provider found no SPIRE settings. Set spire.trust_domain (KAGENTI_SPIRE_TRUST_DOMAIN), which "+
			"is all a plan needs, and a way to register identities: spire.address (the SPIRE server API: unix socket, or TCP "+
			"with an admin X509-SVID), or spire.registration = \"kubernetes\" for ClusterSPIFFEID objects.", doing))
}

func keycloakUnreachable(doing string, err error) diag.Diagnostic {
	return diag.NewErrorDiagnostic("Keycloak Unreachable",
		fmt.Sprintf("While %s the provider could not use Keycloak. Check keycloak.url, keycloak.realm and the "+
			"credentials (username/password or client_id/client_secret).\n\nOriginal Error: %v", doing, err))
}

// changedOnApply: fields the provider had just applied differ at once, so another writer
// rewrites them as they are written.
func changedOnApply(kind composition.Kind, in composition.Input, outOfSync []string) diag.Diagnostic {
	return diag.NewErrorDiagnostic("Composed Objects Changed During Apply",
		fmt.Sprintf("The objects of %s %s/%s were applied, but these fields the provider sets differ right after the apply:\n  %s\n\n"+
			"Another writer rewrites them as they are written: usually a mutating admission webhook or a controller. "+
			"Fields others add beside ours are never drift; only fields the provider sets are. Stop the other writer from "+
			"changing these fields, or set them to what it writes (with composition.patches). The state records what the "+
			"cluster holds.", kind, in.Namespace, in.Name, strings.Join(outOfSync, "\n  ")))
}

// storedSpecUnreadable is an input last applied that cannot be read back (err says from where).
func storedSpecUnreadable(kind, id string, err *storedSpecError) diag.Diagnostic {
	fix := "Remove it from state (terraform state rm) and import it again: import reads the spec from its Service."
	if err.service != "" {
		fix = fmt.Sprintf("The annotation %s of Service %s, which import reads, was removed or edited by hand. Apply the %s from "+
			"the configuration that created it (that writes the annotation again), or fix the id.", err.annotation, err.service, kind)
	}
	return diag.NewErrorDiagnostic("Stored Spec Unreadable",
		fmt.Sprintf("While reading %s %s the provider could not read the spec it last applied. %s\n\nOriginal Error: %v", kind, id, fix, err))
}

// foreignService is a Service found by import that is not a composite of the kind imported.
func foreignService(title, kind, service, label, value string) diag.Diagnostic {
	what := fmt.Sprintf("carries no %s label: Kagenti did not create it. Import the id of a kagenti_%s", label, kind)
	if value != "" {
		what = fmt.Sprintf("is a Kagenti %s (label %s=%q): import it as kagenti_%s, or import the id of a kagenti_%s", value, label, value, value, kind)
	}
	return diag.NewErrorDiagnostic("Service Is Not A Kagenti "+title,
		fmt.Sprintf("Importing kagenti_%s %s found a Service of that name, but it %s.", kind, service, what))
}

// providerDataFrom is the Configure step of every resource and data source: the provider's data,
// or nil (before the provider is configured, or with a diagnostic on a wrong type).
func providerDataFrom(v any, diags *diag.Diagnostics) *providerData {
	if v == nil {
		return nil
	}
	d, ok := v.(*providerData)
	if !ok {
		diags.Append(unexpectedConfigureType(v))
		return nil
	}
	return d
}
