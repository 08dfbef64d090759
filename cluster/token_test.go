package cluster

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/node"
)

const clusterToken = "K10abc123::server:0123456789abcdef"

func tokenSecret() *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: TokenNamespace, Name: TokenSecret},
		Data:       map[string][]byte{"serverToken": []byte(clusterToken + "\n"), "agentToken": []byte(clusterToken + "\n")},
	}
}

func TestJoinToken_AnEmptySettingIsFilledFromTheSecretAndNeverLogged(t *testing.T) {
	st := openStore(t)
	var logs syncBuffer
	cfg := testConfig(testLogger(t, &logs))
	startController(t, fakeCluster(tokenSecret()), st, cfg)

	eventually(t, "the token is filled", func() bool {
		s, err := st.ClusterSettings(context.Background())
		return err == nil && s.Token.IsSet()
	})
	s, _ := st.ClusterSettings(context.Background())
	if s.Token.Reveal() != clusterToken {
		t.Errorf("token %q, want the Secret's serverToken without its newline", s.Token.Reveal())
	}
	// The line is logged just after the settings are written: wait for it, too.
	eventually(t, "a log line saying where the token came from", func() bool {
		return strings.Contains(logs.String(), "join token read from the cluster")
	})
	if strings.Contains(logs.String(), "K10abc123") {
		t.Errorf("the token reached the log:\n%s", logs.String())
	}
}

func TestJoinToken_AnOperatorsTokenIsKept(t *testing.T) {
	st := openStore(t)
	if _, err := st.UpdateClusterSettings(context.Background(), func(s *node.ClusterSettings) error {
		s.Token = "operator-token"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	c := startController(t, fakeCluster(tokenSecret()), st, testConfig(nil))
	c.syncJoinToken(context.Background()) // one pass for certain, besides the loop's own
	s, _ := st.ClusterSettings(context.Background())
	if s.Token.Reveal() != "operator-token" {
		t.Errorf("token replaced by the cluster's; the operator's setting must win")
	}
}

func TestLiveServers_CountsControlPlaneNodesAndNamesTheOldest(t *testing.T) {
	old := kubeNode("cp-b", true, "control-plane", "etcd")
	old.CreationTimestamp = metav1.Unix(1000, 0)
	young := kubeNode("cp-a", false, "control-plane", "etcd")
	young.CreationTimestamp = metav1.Unix(2000, 0)
	etcdOnly := kubeNode("etcd-1", true, "etcd")
	etcdOnly.CreationTimestamp = metav1.Unix(3000, 0)
	c := startController(t, fakeCluster(young, old, etcdOnly, kubeNode("w-1", true)), openStore(t), testConfig(nil))

	servers, init, ok := c.LiveServers()
	if !ok || servers != 3 || init != "cp-b" {
		t.Errorf("LiveServers = %d, %q, %v; want 3 servers with cp-b the cluster-init node", servers, init, ok)
	}
}

func TestLiveServers_WithoutServerRolesTheInventoryAnswers(t *testing.T) {
	c := startController(t, fakeCluster(kubeNode("w-1", true)), openStore(t), testConfig(nil))
	if n, init, ok := c.LiveServers(); ok {
		t.Errorf("LiveServers = %d, %q, ok; want no answer from a cluster with no server-role Node", n, init)
	}
}
