//go:build cluster

package cluster_test

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/raibid-labs/raibid-ci/deploy"
)

// render is every object of a kustomization of the deploy tree.
func render(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	docs, err := deploy.Render(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, d := range docs {
		u, err := decode(d)
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		out = append(out, u)
	}
	return out
}

// Every object Flux would apply is accepted by a real API server with the
// real KEDA and Flux CRDs installed: admission, OpenAPI and CRD schemas,
// strict field validation, defaulting. Nothing is stored (dry run).
func TestDeployTreeAcceptedByAPIServer(t *testing.T) {
	ctx := context.Background()
	for _, dir := range deploy.Kustomizations {
		t.Run(dir, func(t *testing.T) {
			objs := render(t, dir)
			// Namespaces first, for real: a dry-run object needs its
			// namespace to exist.
			for _, u := range objs {
				if u.GetKind() == "Namespace" {
					if _, err := applyObject(ctx, u, false); err != nil {
						t.Errorf("Namespace %s: %v", u.GetName(), err)
					}
				}
			}
			for _, u := range objs {
				if _, err := applyObject(ctx, u, true); err != nil {
					t.Errorf("%s %s/%s refused: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
				}
			}
			t.Logf("%d objects accepted", len(objs))
		})
	}
}

// The check above can fail: the same API server refuses broken objects of
// the kinds the tree holds.
func TestAPIServerRefusesBrokenObjects(t *testing.T) {
	ctx := context.Background()
	var scaledJob *unstructured.Unstructured
	for _, u := range render(t, "flux/apps/raibid") {
		if u.GetKind() == "ScaledJob" {
			scaledJob = u
		}
	}
	if scaledJob == nil {
		t.Fatal("no ScaledJob in flux/apps/raibid")
	}
	for _, c := range []struct {
		name   string
		break_ func(u *unstructured.Unstructured)
		want   string
	}{
		{"unknown field (a typo)", func(u *unstructured.Unstructured) {
			v, _, _ := unstructured.NestedFieldCopy(u.Object, "spec", "pollingInterval")
			unstructured.RemoveNestedField(u.Object, "spec", "pollingInterval")
			_ = unstructured.SetNestedField(u.Object, v, "spec", "pollingIntervl")
		}, "pollingIntervl"},
		{"wrong type", func(u *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(u.Object, "five", "spec", "pollingInterval")
		}, "pollingInterval"},
		{"missing required trigger type", func(u *unstructured.Unstructured) {
			triggers, _, _ := unstructured.NestedSlice(u.Object, "spec", "triggers")
			delete(triggers[0].(map[string]any), "type")
			_ = unstructured.SetNestedSlice(u.Object, triggers, "spec", "triggers")
		}, "type"},
	} {
		t.Run(c.name, func(t *testing.T) {
			u := scaledJob.DeepCopy()
			c.break_(u)
			_, err := applyObject(ctx, u, true)
			if err == nil {
				t.Fatalf("the API server accepted a broken ScaledJob")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("refused for another reason: %v", err)
			}
			t.Logf("refused: %v", err)
		})
	}
	// A core object's invalid field is refused by the API server's own
	// validation.
	for _, u := range render(t, "flux/apps/raibid") {
		if u.GetKind() != "Deployment" {
			continue
		}
		u = u.DeepCopy()
		_ = unstructured.SetNestedField(u.Object, int64(-1), "spec", "replicas")
		if _, err := applyObject(ctx, u, true); err == nil || !strings.Contains(err.Error(), "replicas") {
			t.Errorf("Deployment %s with replicas -1: %v, want refused", u.GetName(), err)
		}
	}
}
