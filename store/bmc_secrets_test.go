package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bootyard/bootyard/node"
)

func TestNodeSecret_LivesApartFromTheRecordAndGoesWithTheNode(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	secret := []byte("pw-Zq81-never-in-a-record")
	spec := workerSpec("w1", coreMAC(1))
	spec.BMC = &node.BMC{Protocol: node.BMCIPMI, Address: "10.0.0.9", User: "admin", PasswordSet: true}
	if _, err := s.ImportNode(ctx, spec, "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NodeSecret(ctx, "w1", node.BMCPasswordKey); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("secret before it is set: %v, want ErrNotFound", err)
	}
	if err := s.SetNodeSecret(ctx, "nobody", node.BMCPasswordKey, secret); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("secret of a node that does not exist: %v, want ErrNotFound", err)
	}
	if err := s.SetNodeSecret(ctx, "w1", node.BMCPasswordKey, secret); err != nil {
		t.Fatal(err)
	}
	got, err := s.NodeSecret(ctx, "w1", node.BMCPasswordKey)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("NodeSecret = %q, %v", got, err)
	}

	// Renaming the node carries the secret with it.
	if _, err := s.UpdateNode(ctx, "w1", func(n *node.Node) ([]node.Event, error) { n.Name = "w2"; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if got, err := s.NodeSecret(ctx, "w2", node.BMCPasswordKey); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("after rename: %q, %v", got, err)
	}
	if _, err := s.NodeSecret(ctx, "w1", node.BMCPasswordKey); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("old name still has the secret: %v", err)
	}

	// Nothing that reads the node carries the secret.
	n, _ := s.GetNode(ctx, "w2")
	if b, _ := jsonOf(n); bytes.Contains(b, secret) {
		t.Fatalf("node record carries the secret: %s", b)
	}

	// An empty value deletes the key.
	if err := s.SetNodeSecret(ctx, "w2", node.BMCPasswordKey, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NodeSecret(ctx, "w2", node.BMCPasswordKey); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("deleted secret: %v", err)
	}

	// Removing the node removes its secrets: a node re-imported under the name gets none.
	if err := s.SetNodeSecret(ctx, "w2", node.BMCPasswordKey, secret); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveNode(ctx, "w2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportNode(ctx, workerSpec("w2", coreMAC(1)), "api"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.NodeSecret(ctx, "w2", node.BMCPasswordKey); !errors.Is(err, node.ErrNotFound) {
		t.Fatalf("secret survived the node's removal: %v", err)
	}
	closeAndCheck(t, s)
}

func jsonOf(n node.Node) ([]byte, error) { return json.Marshal(n) }

func TestImportNodes_ABMCChangeIsNotTheSameImport(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, tempStorePath(t))
	spec := workerSpec("w1", coreMAC(1))
	spec.BMC = &node.BMC{Protocol: node.BMCIPMI, Address: "10.0.0.9"}
	if _, err := s.ImportNodes(ctx, []ImportRow{{Line: 1, Node: spec}}, ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := s.ImportNodes(ctx, []ImportRow{{Line: 1, Node: spec}}, ImportOptions{})
	if err != nil || res[0].Outcome != ImportUnchanged {
		t.Fatalf("same row again: %+v, %v", res, err)
	}
	moved := spec
	moved.BMC = &node.BMC{Protocol: node.BMCIPMI, Address: "10.0.0.10"}
	res, _ = s.ImportNodes(ctx, []ImportRow{{Line: 1, Node: moved}}, ImportOptions{})
	if res[0].Outcome != ImportFailed || !strings.Contains(res[0].Error, "conflict") {
		t.Fatalf("the row with another BMC: %+v, want a conflict", res)
	}
}
