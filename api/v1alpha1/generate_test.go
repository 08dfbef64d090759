package v1alpha1_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// controllerGen is the generator `make crds` runs; the test runs the same one.
const controllerGen = "sigs.k8s.io/controller-tools/cmd/controller-gen@v0.23.0"

// TestGenerated_CRDsAndDeepCopyMatchTheGoTypes regenerates the CRD manifests and the
// deep-copy functions into a temporary directory and compares them with the committed
// ones, so a type changed without `make crds` fails here instead of in a cluster.
func TestGenerated_CRDsAndDeepCopyMatchTheGoTypes(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: controller-gen is built from the module proxy")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(mk, []byte(controllerGen)) {
		t.Fatalf("the Makefile's crds target does not run %s: keep the two versions equal", controllerGen)
	}
	out := t.TempDir()
	cmd := exec.Command("go", "run", controllerGen, "object", "paths=./api/...", "output:object:dir="+out,
		"crd:crdVersions=v1", "output:crd:dir="+filepath.Join(out, "crds"))
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot run controller-gen (%v), needed to check the generated files:\n%s", err, b)
	}
	compare := func(generated, committed string) {
		t.Helper()
		want, err := os.ReadFile(generated)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(committed)
		if err != nil {
			t.Fatalf("%v (run make crds)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what controller-gen generates from the Go types: run make crds", committed)
		}
	}
	compare(filepath.Join(out, "zz_generated.deepcopy.go"), filepath.Join(root, "api", "v1alpha1", "zz_generated.deepcopy.go"))
	generated, err := filepath.Glob(filepath.Join(out, "crds", "*.yaml"))
	if err != nil || len(generated) == 0 {
		t.Fatalf("controller-gen wrote no CRDs (%v)", err)
	}
	committed, _ := filepath.Glob(filepath.Join(root, "deploy", "crds", "*.yaml"))
	if len(committed) != len(generated) {
		t.Errorf("deploy/crds holds %d manifests, controller-gen generates %d: run make crds", len(committed), len(generated))
	}
	for _, g := range generated {
		compare(g, filepath.Join(root, "deploy", "crds", filepath.Base(g)))
	}
}
