package router

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
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
		syncs = append(syncs, svc.HasSynced, cm.HasSynced)
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
