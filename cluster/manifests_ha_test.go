package cluster

import (
	"context"
	"path/filepath"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The HA manifest replaces the single-replica Deployment startKubeAPI applied: both are
// bootyard/bootyard-system, as an operator switching shapes would have them.
func TestManifests_HAShapeAppliesAndItsRBACGrantsOnlyWhatReplicasUse(t *testing.T) {
	api := startKubeAPI(t)
	ctx := context.Background()
	if err := api.admin.AppsV1().Deployments(DefaultHelperNamespace).Delete(ctx, "bootyard", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("delete the single-replica Deployment: %v", err)
	}
	for _, obj := range decodeManifests(t, filepath.Join("..", "deploy", "deployment-ha.yaml")) {
		var err error
		switch o := obj.(type) {
		case *policyv1.PodDisruptionBudget:
			_, err = api.admin.PolicyV1().PodDisruptionBudgets(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		case *appsv1.Deployment:
			_, err = api.admin.AppsV1().Deployments(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
		default:
			t.Fatalf("deployment-ha.yaml holds a %T the test does not expect", obj)
		}
		if err != nil {
			t.Fatalf("apply %T: %v", obj, err)
		}
	}
	d, err := api.admin.AppsV1().Deployments(DefaultHelperNamespace).Get(ctx, "bootyard", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	env := map[string]bool{}
	for _, e := range c.Env {
		env[e.Name] = e.ValueFrom != nil
	}
	switch {
	case *d.Spec.Replicas < 2:
		t.Errorf("replicas %d, want at least 2", *d.Spec.Replicas)
	case d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType:
		t.Errorf("strategy %s, want RollingUpdate", d.Spec.Strategy.Type)
	case c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz":
		t.Errorf("readiness probe %+v, want GET /readyz", c.ReadinessProbe)
	case !slices.Contains(c.Args, "--leader-elect"):
		t.Errorf("args %q lack --leader-elect", c.Args)
	case !env["POD_NAME"] || !env["POD_NAMESPACE"] || !env["BOOTYARD_ADMIN_TOKEN"]:
		t.Errorf("env %v: want POD_NAME, POD_NAMESPACE and BOOTYARD_ADMIN_TOKEN from the downward API and a Secret", env)
	}
	pdb, err := api.admin.PolicyV1().PodDisruptionBudgets(DefaultHelperNamespace).Get(ctx, "bootyard", metav1.GetOptions{})
	if err != nil || pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 {
		t.Fatalf("PodDisruptionBudget %+v, %v: want minAvailable ≥ 1", pdb, err)
	}

	// What deploy/rbac.yaml lets the bootyard service account do, asked as that account.
	restCfg, err := RESTConfig(api.bootyardKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(restCfg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		attr authorizationv1.ResourceAttributes
		want bool
	}{
		{"get the leader Lease", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Group: "coordination.k8s.io", Resource: "leases", Verb: "get", Name: DefaultLeaseName}, true},
		{"renew the leader Lease", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Group: "coordination.k8s.io", Resource: "leases", Verb: "update", Name: DefaultLeaseName}, true},
		{"create the leader Lease", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Group: "coordination.k8s.io", Resource: "leases", Verb: "create"}, true},
		{"watch nodes of the inventory", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Group: "bootyard.io", Resource: "bootyardnodes", Verb: "watch"}, true},
		{"update a node's status", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Group: "bootyard.io", Resource: "bootyardnodes", Subresource: "status", Verb: "update"}, true},
		{"claim an address block (create a lease block object)", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Group: "bootyard.io", Resource: "bootyardleaseblocks", Verb: "create"}, true},
		{"write a node's Secret", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Resource: "secrets", Verb: "update", Name: "node-w1"}, true},
		// Attacker's side: what a stolen Bootyard token must not reach.
		{"renew another component's Lease", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Group: "coordination.k8s.io", Resource: "leases", Verb: "update", Name: "kube-scheduler"}, false},
		{"leases of kube-system", authorizationv1.ResourceAttributes{Namespace: "kube-system", Group: "coordination.k8s.io", Resource: "leases", Verb: "update", Name: DefaultLeaseName}, false},
		{"list Secrets, even its own", authorizationv1.ResourceAttributes{Namespace: DefaultHelperNamespace, Resource: "secrets", Verb: "list"}, false},
		{"Secrets of kube-system", authorizationv1.ResourceAttributes{Namespace: "kube-system", Resource: "secrets", Verb: "get", Name: "bootstrap-token-abcdef"}, false},
		{"inventory resources in another namespace", authorizationv1.ResourceAttributes{Namespace: "default", Group: "bootyard.io", Resource: "bootyardnodes", Verb: "list"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attr := tt.attr
			review, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
				&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attr}}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if review.Status.Allowed != tt.want {
				t.Errorf("allowed = %v, want %v (%s)", review.Status.Allowed, tt.want, review.Status.Reason)
			}
		})
	}
}
