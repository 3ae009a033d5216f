package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// Discovery keeps a Registry in step with the cluster through informers (watches, not polling):
// a new, changed or removed agent is routable as soon as its watch event arrives. It reads
// Services, ConfigMaps and EndpointSlices through the dynamic client into the few fields it
// needs: the router links no typed client and no API group it does not read.
type Discovery struct {
	Client dynamic.Interface
	Keys   contract.Keys
	// Namespaces to watch; empty means all.
	Namespaces []string
	Registry   *Registry
	Log        *slog.Logger
}

var (
	servicesResource       = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	configMapsResource     = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	endpointSlicesResource = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
)

// labelServiceName is the label an EndpointSlice names its Service with.
const labelServiceName = "kubernetes.io/service-name"

// Run starts the informers, waits for their first sync, then blocks until ctx is done.
func (d *Discovery) Run(ctx context.Context, synced chan<- struct{}) error {
	namespaces := d.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	selector := d.Keys.Type() + " in (" + contract.TypeAgent + "," + contract.TypeTool + ")"
	var informers []cache.SharedIndexInformer
	var syncs []cache.InformerSynced
	for _, ns := range namespaces {
		informer := func(gvr schema.GroupVersionResource, newObject func() any, indexers cache.Indexers, h cache.ResourceEventHandlerFuncs) (cache.SharedIndexInformer, error) {
			res := d.Client.Resource(gvr).Namespace(ns)
			lw := &cache.ListWatch{
				ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
					o.LabelSelector = selector
					return res.List(ctx, o)
				},
				WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
					o.LabelSelector = selector
					return res.Watch(ctx, o)
				},
			}
			inf := cache.NewSharedIndexInformer(lw, &unstructured.Unstructured{}, 10*time.Minute, indexers)
			// The cache keeps the few fields discovery reads, decoded once per change, not the
			// whole object.
			if err := inf.SetTransform(func(obj any) (any, error) {
				u, ok := obj.(*unstructured.Unstructured)
				if !ok {
					return obj, nil
				}
				unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
				out := newObject()
				return out, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out)
			}); err != nil {
				return nil, err
			}
			reg, err := inf.AddEventHandler(h)
			if err != nil {
				return nil, err
			}
			informers = append(informers, inf)
			// Serving starts once the handlers have seen the first listing, not only the cache.
			syncs = append(syncs, reg.HasSynced)
			return inf, nil
		}
		if _, err := informer(servicesResource, func() any { return &service{} }, nil, cache.ResourceEventHandlerFuncs{
			AddFunc:    d.onService,
			UpdateFunc: func(_, obj any) { d.onService(obj) },
			DeleteFunc: d.onServiceDelete,
		}); err != nil {
			return err
		}
		if _, err := informer(configMapsResource, func() any { return &configMap{} }, nil, cache.ResourceEventHandlerFuncs{
			AddFunc:    d.onConfigMap,
			UpdateFunc: func(_, obj any) { d.onConfigMap(obj) },
			DeleteFunc: d.onConfigMapDelete,
		}); err != nil {
			return err
		}
		// EndpointSlices carry their Service's labels, so the same selector finds ours.
		var slices cache.SharedIndexInformer
		sync := func(obj any) {
			if es, ok := decoded[endpointSlice](obj); ok {
				d.syncEndpoints(slices.GetIndexer(), es.Namespace, es.Labels[labelServiceName])
			}
		}
		var err error
		if slices, err = informer(endpointSlicesResource, func() any { return &endpointSlice{} },
			cache.Indexers{serviceIndex: indexByService}, cache.ResourceEventHandlerFuncs{
				AddFunc: sync, UpdateFunc: func(_, obj any) { sync(obj) }, DeleteFunc: sync,
			}); err != nil {
			return err
		}
	}
	// Started once all exist: the EndpointSlice handler reads its own informer's cache.
	for _, inf := range informers {
		go inf.RunWithContext(ctx)
	}
	if !cache.WaitForCacheSync(ctx.Done(), syncs...) {
		return fmt.Errorf("discovery: caches did not sync: %w", ctx.Err())
	}
	if synced != nil {
		close(synced)
	}
	<-ctx.Done()
	return nil
}

// The fields of the objects discovery reads.
type (
	service struct {
		metav1.ObjectMeta `json:"metadata"`
		Spec              struct {
			Ports []struct {
				Name string `json:"name"`
				Port int32  `json:"port"`
			} `json:"ports"`
		} `json:"spec"`
	}
	configMap struct {
		metav1.ObjectMeta `json:"metadata"`
		Data              map[string]string `json:"data"`
	}
	endpointSlice struct {
		metav1.ObjectMeta `json:"metadata"`
		Ports             []struct {
			Name *string `json:"name"`
			Port *int32  `json:"port"`
		} `json:"ports"`
		Endpoints []struct {
			Addresses  []string `json:"addresses"`
			Conditions struct {
				Ready *bool `json:"ready"`
			} `json:"conditions"`
		} `json:"endpoints"`
	}
)

// decoded is an informer's object (or the last state of a deleted one) as the informer's
// transform stored it.
func decoded[T any](obj any) (*T, bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	out, ok := obj.(*T)
	return out, ok
}

// serviceIndex indexes EndpointSlices by "namespace/service".
const serviceIndex = "service"

func indexByService(obj any) ([]string, error) {
	es, ok := obj.(*endpointSlice)
	if !ok || es.Labels[labelServiceName] == "" {
		return nil, nil
	}
	return []string{es.Namespace + "/" + es.Labels[labelServiceName]}, nil
}

// syncEndpoints sets a Service's ready endpoints from all its EndpointSlices.
func (d *Discovery) syncEndpoints(slices cache.Indexer, namespace, service string) {
	if service == "" {
		return
	}
	objs, err := slices.ByIndex(serviceIndex, namespace+"/"+service)
	if err != nil {
		return
	}
	var eps []string
	for _, obj := range objs {
		s, ok := obj.(*endpointSlice)
		if !ok {
			continue
		}
		var port int32
		for _, p := range s.Ports {
			if p.Port != nil && (port == 0 || (p.Name != nil && *p.Name == "http")) {
				port = *p.Port
			}
		}
		if port == 0 {
			continue
		}
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && !*e.Conditions.Ready {
				continue
			}
			for _, a := range e.Addresses {
				eps = append(eps, net.JoinHostPort(a, strconv.Itoa(int(port))))
			}
		}
	}
	sort.Strings(eps)
	d.Registry.SetEndpoints(namespace, service, eps)
}

func (d *Discovery) onService(obj any) {
	svc, ok := decoded[service](obj)
	if !ok {
		return
	}
	// The port named http (the composition's), else the first: an agent's Service also has
	// its card signer's port, and another writer may reorder them.
	var port int32 = 80
	for i, p := range svc.Spec.Ports {
		if i == 0 || p.Name == "http" {
			port = p.Port
		}
		if p.Name == "http" {
			break
		}
	}
	rt, err := RouteFromService(d.Keys, svc.Namespace, svc.Name, svc.Labels, svc.Annotations, port)
	if err != nil {
		d.Log.Warn("ignoring Service", "error", err)
		d.Registry.DeleteService(svc.Namespace, svc.Name)
		return
	}
	// The card signer runs in the agent's pods: an agent registered by endpoint has none, and
	// its card is never fetched from the Service's name at a port the Service's writer chose.
	if rt.Type == contract.TypeAgent && rt.Protocol == "a2a" && svc.Annotations[d.Keys.Endpoint()] == "" {
		for _, p := range svc.Spec.Ports {
			if p.Name == contract.CardSignerPortName {
				rt.CardPort = p.Port
			}
		}
	}
	d.Log.Info("route", "namespace", svc.Namespace, "name", svc.Name, "type", rt.Type, "upstream", rt.Upstream.String())
	d.Registry.SetService(rt)
}

func (d *Discovery) onServiceDelete(obj any) {
	if svc, ok := decoded[service](obj); ok {
		d.Log.Info("route removed", "namespace", svc.Namespace, "name", svc.Name)
		d.Registry.DeleteService(svc.Namespace, svc.Name)
	}
}

func (d *Discovery) onConfigMap(obj any) {
	cm, ok := decoded[configMap](obj)
	if !ok {
		return
	}
	agent, ok := cardName(cm.Name)
	if !ok {
		return
	}
	card := cm.Data[contract.CardKey]
	if card == "" {
		card = cm.Data[contract.ManifestKey]
	}
	if !json.Valid([]byte(card)) {
		d.Log.Warn("ignoring card that is not JSON", "namespace", cm.Namespace, "configmap", cm.Name)
		return
	}
	d.Registry.SetCard(cm.Namespace, agent, json.RawMessage(card))
}

func (d *Discovery) onConfigMapDelete(obj any) {
	if cm, ok := decoded[configMap](obj); ok {
		if agent, ok := cardName(cm.Name); ok {
			d.Registry.DeleteCard(cm.Namespace, agent)
		}
	}
}
