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

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kagenti/terraform-provider-kagenti/internal/contract"
)

// Discovery keeps a Registry in step with the cluster through informers (watches, not polling):
// a new, changed or removed agent is routable as soon as its watch event arrives.
type Discovery struct {
	Client kubernetes.Interface
	Keys   contract.Keys
	// Namespaces to watch; empty means all.
	Namespaces []string
	Registry   *Registry
	Log        *slog.Logger
}

// Run starts the informers, waits for their first sync, then blocks until ctx is done.
func (d *Discovery) Run(ctx context.Context, synced chan<- struct{}) error {
	namespaces := d.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	selector := d.Keys.Type() + " in (" + contract.TypeAgent + "," + contract.TypeTool + ")"
	var syncs []cache.InformerSynced
	for _, ns := range namespaces {
		factory := informers.NewSharedInformerFactoryWithOptions(d.Client, 10*time.Minute,
			informers.WithNamespace(ns),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector }))
		svc := factory.Core().V1().Services().Informer()
		if _, err := svc.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    d.onService,
			UpdateFunc: func(_, obj any) { d.onService(obj) },
			DeleteFunc: d.onServiceDelete,
		}); err != nil {
			return err
		}
		cm := factory.Core().V1().ConfigMaps().Informer()
		if _, err := cm.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    d.onConfigMap,
			UpdateFunc: func(_, obj any) { d.onConfigMap(obj) },
			DeleteFunc: d.onConfigMapDelete,
		}); err != nil {
			return err
		}
		// EndpointSlices carry their Service's labels, so the same selector finds ours.
		slices := factory.Discovery().V1().EndpointSlices()
		lister := slices.Lister()
		sync := func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if es, ok := obj.(*discoveryv1.EndpointSlice); ok {
				d.syncEndpoints(lister, es.Namespace, es.Labels[discoveryv1.LabelServiceName])
			}
		}
		es := slices.Informer()
		if _, err := es.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: sync, UpdateFunc: func(_, obj any) { sync(obj) }, DeleteFunc: sync,
		}); err != nil {
			return err
		}
		syncs = append(syncs, svc.HasSynced, cm.HasSynced, es.HasSynced)
		factory.Start(ctx.Done())
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

// syncEndpoints sets a Service's ready endpoints from all its EndpointSlices.
func (d *Discovery) syncEndpoints(lister discoverylisters.EndpointSliceLister, namespace, service string) {
	if service == "" {
		return
	}
	sel := labels.SelectorFromSet(labels.Set{discoveryv1.LabelServiceName: service})
	slices, err := lister.EndpointSlices(namespace).List(sel)
	if err != nil {
		return
	}
	var eps []string
	for _, s := range slices {
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
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return
	}
	var port int32 = 80
	if len(svc.Spec.Ports) > 0 {
		port = svc.Spec.Ports[0].Port
	}
	rt, err := RouteFromService(d.Keys, svc.Namespace, svc.Name, svc.Labels, svc.Annotations, port)
	if err != nil {
		d.Log.Warn("ignoring Service", "error", err)
		d.Registry.DeleteService(svc.Namespace, svc.Name)
		return
	}
	d.Log.Info("route", "namespace", svc.Namespace, "name", svc.Name, "type", rt.Type, "upstream", rt.Upstream.String())
	d.Registry.SetService(rt)
}

func (d *Discovery) onServiceDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if svc, ok := obj.(*corev1.Service); ok {
		d.Log.Info("route removed", "namespace", svc.Namespace, "name", svc.Name)
		d.Registry.DeleteService(svc.Namespace, svc.Name)
	}
}

func (d *Discovery) onConfigMap(obj any) {
	cm, ok := obj.(*corev1.ConfigMap)
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
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if cm, ok := obj.(*corev1.ConfigMap); ok {
		if agent, ok := cardName(cm.Name); ok {
			d.Registry.DeleteCard(cm.Namespace, agent)
		}
	}
}
