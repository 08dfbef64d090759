package kubestore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/api/v1alpha1"
	"github.com/bootyard/bootyard/node"
)

// Keys of the cluster Secret: the join token and the installer environment as JSON.
const (
	keyToken      = "token"
	keyInstallEnv = "installEnv"
	keyPassword   = "passwordHash"
)

// settingsObj reads the settings object, creating an empty one the first time.
func (s *Store) settingsObj(ctx context.Context) (*v1alpha1.BootyardSettings, error) {
	o := &v1alpha1.BootyardSettings{}
	err := s.rc.Get().Namespace(s.ns).Resource(resSettings).Name(settingsName).Do(ctx).Into(o)
	if apierrors.IsNotFound(err) {
		o = &v1alpha1.BootyardSettings{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: settingsName},
			Spec: v1alpha1.BootyardSettingsSpec{TokenSecret: clusterSecret}}
		created := &v1alpha1.BootyardSettings{}
		err = s.rc.Post().Namespace(s.ns).Resource(resSettings).Body(o).Do(ctx).Into(created)
		if apierrors.IsAlreadyExists(err) {
			return s.settingsObj(ctx)
		}
		o = created
	}
	if err != nil {
		return nil, fmt.Errorf("cluster settings: %w", kindErr(err))
	}
	return o, nil
}

func (s *Store) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	sec, err := s.core.CoreV1().Secrets(s.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, kindErr(err))
	}
	return sec, nil
}

// putSecretData sets keys of the Secret name (creating it), leaving its other keys, and
// returns the Secret's new resourceVersion.
func (s *Store) putSecretData(ctx context.Context, name string, labels map[string]string, data map[string][]byte) (string, error) {
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		sec, err := s.secret(ctx, name)
		if err != nil {
			return "", err
		}
		var out *corev1.Secret
		if sec == nil {
			sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name, Labels: labels}, Type: corev1.SecretTypeOpaque, Data: data}
			out, err = s.core.CoreV1().Secrets(s.ns).Create(ctx, sec, metav1.CreateOptions{})
		} else {
			if sec.Data == nil {
				sec.Data = map[string][]byte{}
			}
			maps.Copy(sec.Data, data)
			out, err = s.core.CoreV1().Secrets(s.ns).Update(ctx, sec, metav1.UpdateOptions{})
		}
		if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("write secret %s: %w", name, kindErr(err))
		}
		return out.ResourceVersion, nil
	}
	return "", fmt.Errorf("write secret %s: %w: %w", name, errTooManyConflicts, node.ErrConflict)
}

func (s *Store) readSettings(ctx context.Context) (*v1alpha1.BootyardSettings, node.ClusterSettings, error) {
	o, err := s.settingsObj(ctx)
	if err != nil {
		return nil, node.ClusterSettings{}, err
	}
	c, err := s.parseSettings(ctx, o)
	return o, c, err
}

// parseSettings is o with the secrets from the cluster Secret.
func (s *Store) parseSettings(ctx context.Context, o *v1alpha1.BootyardSettings) (node.ClusterSettings, error) {
	sp := o.Spec
	c := node.ClusterSettings{ServerURL: sp.ServerURL, InstallURL: sp.InstallURL, ExtraCloudConfig: sp.ExtraCloudConfig,
		SSHAuthorizedKeys: slices.Clone(sp.SSHAuthorizedKeys), DefaultImage: sp.DefaultImage, WipeOverwrite: sp.WipeOverwrite,
		JoinTurnMinutes: sp.JoinTurnMinutes}
	sec, err := s.secret(ctx, clusterSecret)
	if err != nil {
		return node.ClusterSettings{}, err
	}
	if sec != nil {
		c.Token = node.Secret(sec.Data[keyToken])
		if env := sec.Data[keyInstallEnv]; len(env) > 0 {
			if err := json.Unmarshal(env, &c.InstallEnv); err != nil {
				return node.ClusterSettings{}, fmt.Errorf("cluster settings: installEnv: %w", err)
			}
		}
	}
	return c, nil
}

// settingsCache is the settings object as the informer (or this replica's last write)
// has it, and the settings parsed from it with the cluster Secret. The object's
// annotationSecretVersion changes whenever Bootyard writes the Secret, so a new object
// version is the only signal to read the Secret again: the machine endpoints ask for the
// settings on every request, and two API reads each would be most of their cost.
type settingsCache struct {
	mu       sync.Mutex
	obj      *v1alpha1.BootyardSettings
	parsedRV string
	parsedAt time.Time
	parsed   node.ClusterSettings
}

// secretRecheck bounds how long a hand edit of the cluster Secret (kubectl) goes unseen
// when the settings object does not change with it.
const secretRecheck = 30 * time.Second

// annotationSecretVersion on the settings object is the cluster Secret's
// resourceVersion as of the last settings write.
const annotationSecretVersion = "bootyard.io/secret-version"

func (c *settingsCache) put(o *v1alpha1.BootyardSettings) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.obj == nil || resourceVersion(o.ResourceVersion) > resourceVersion(c.obj.ResourceVersion) {
		c.obj = o
	}
}

func cloneSettings(c node.ClusterSettings) node.ClusterSettings {
	c.InstallEnv = maps.Clone(c.InstallEnv)
	c.SSHAuthorizedKeys = slices.Clone(c.SSHAuthorizedKeys)
	return c
}

// ClusterSettings returns the join settings: the settings object with the token and
// installer environment from the cluster Secret.
func (s *Store) ClusterSettings(ctx context.Context) (node.ClusterSettings, error) {
	if err := ctxErr(ctx); err != nil {
		return node.ClusterSettings{}, err
	}
	s.settings.mu.Lock()
	defer s.settings.mu.Unlock()
	o := s.settings.obj
	if o == nil {
		return node.ClusterSettings{}, nil // never written
	}
	now := s.now()
	changed := s.settings.parsedRV != o.ResourceVersion
	if !changed && now.Sub(s.settings.parsedAt) <= secretRecheck {
		return cloneSettings(s.settings.parsed), nil
	}
	// Only a hand edit of the Secret is looked for now: while the API server does not
	// answer, the settings read before are the ones in force, and no machine waits for
	// a read that cannot come.
	if _, down := s.reach.since(); down && !changed {
		return cloneSettings(s.settings.parsed), nil
	}
	c, err := s.parseSettings(ctx, o)
	switch {
	case err != nil && !changed && unreachable(err):
		s.log.Warn("the cluster Secret could not be read again; the settings read before stay in force", slog.Any("err", err))
		s.settings.parsedAt = now
	case err != nil:
		return node.ClusterSettings{}, err
	default:
		s.settings.parsed, s.settings.parsedRV, s.settings.parsedAt = c, o.ResourceVersion, now
	}
	return cloneSettings(s.settings.parsed), nil
}

// UpdateClusterSettings applies fn and stores the result if it validates: the Secret's
// part first (a token is never announced by the object before it can be read), then the
// object, conditional on the version fn saw.
func (s *Store) UpdateClusterSettings(ctx context.Context, fn func(*node.ClusterSettings) error) (node.ClusterSettings, error) {
	if err := ctxErr(ctx); err != nil {
		return node.ClusterSettings{}, err
	}
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		o, c, err := s.readSettings(ctx)
		if err != nil {
			return node.ClusterSettings{}, err
		}
		before := c
		before.InstallEnv = maps.Clone(c.InstallEnv)
		if err := fn(&c); err != nil {
			return node.ClusterSettings{}, err
		}
		if err := c.Validate(); err != nil {
			return node.ClusterSettings{}, err
		}
		if c.Token != before.Token || !maps.Equal(c.InstallEnv, before.InstallEnv) {
			env, err := json.Marshal(c.InstallEnv)
			if err != nil {
				return node.ClusterSettings{}, fmt.Errorf("encode installEnv: %w", err)
			}
			rv, err := s.putSecretData(ctx, clusterSecret, nil, map[string][]byte{keyToken: []byte(c.Token.Reveal()), keyInstallEnv: env})
			if err != nil {
				return node.ClusterSettings{}, err
			}
			if o.Annotations == nil {
				o.Annotations = map[string]string{}
			}
			o.Annotations[annotationSecretVersion] = rv
		}
		o.Spec = v1alpha1.BootyardSettingsSpec{ServerURL: c.ServerURL, InstallURL: c.InstallURL, ExtraCloudConfig: c.ExtraCloudConfig,
			SSHAuthorizedKeys: slices.Clone(c.SSHAuthorizedKeys), DefaultImage: c.DefaultImage, WipeOverwrite: c.WipeOverwrite,
			JoinTurnMinutes: c.JoinTurnMinutes, TokenSecret: clusterSecret}
		out := &v1alpha1.BootyardSettings{}
		err = s.rc.Put().Namespace(s.ns).Resource(resSettings).Name(settingsName).Body(o).Do(ctx).Into(out)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return node.ClusterSettings{}, fmt.Errorf("update cluster settings: %w", kindErr(err))
		}
		s.settings.put(out)
		return c, nil
	}
	return node.ClusterSettings{}, fmt.Errorf("update cluster settings: %w: %w", errTooManyConflicts, node.ErrConflict)
}

// AdminPasswordHash returns the stored hash (nil when never set), from a Secret.
func (s *Store) AdminPasswordHash(ctx context.Context) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	sec, err := s.secret(ctx, adminSecret)
	if err != nil || sec == nil {
		return nil, err
	}
	return sec.Data[keyPassword], nil
}

// SetAdminPasswordHash replaces the stored hash.
func (s *Store) SetAdminPasswordHash(ctx context.Context, hash []byte) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if len(hash) == 0 {
		return fmt.Errorf("set admin password: empty hash")
	}
	_, err := s.putSecretData(ctx, adminSecret, nil, map[string][]byte{keyPassword: hash})
	return err
}

// nodeSecretName is the Secret of one node's secret values.
func nodeSecretName(nodeName string) string { return "bootyard-node-" + nodeName }

// SetNodeSecret stores value under key in the node's own Secret (BMC passwords, ...),
// never in its BootyardNode.
func (s *Store) SetNodeSecret(ctx context.Context, nodeName, key string, value []byte) error {
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if _, ok := s.nodes.get(nodeName); !ok {
		return fmt.Errorf("node secret: node %q: %w", nodeName, node.ErrNotFound)
	}
	_, err := s.putSecretData(ctx, nodeSecretName(nodeName), map[string]string{labelNode: nodeName}, map[string][]byte{key: value})
	return err
}

// NodeSecret reads one secret value of a node (ErrNotFound when unset).
func (s *Store) NodeSecret(ctx context.Context, nodeName, key string) ([]byte, error) {
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	sec, err := s.secret(ctx, nodeSecretName(nodeName))
	if err != nil {
		return nil, err
	}
	v, ok := []byte(nil), false
	if sec != nil {
		v, ok = sec.Data[key]
	}
	if !ok {
		return nil, fmt.Errorf("node %s secret %s: %w", nodeName, key, node.ErrNotFound)
	}
	return v, nil
}

// moveNodeSecret carries a node's secret values to its new name.
func (s *Store) moveNodeSecret(ctx context.Context, from, to string) error {
	sec, err := s.secret(ctx, nodeSecretName(from))
	if err != nil || sec == nil {
		return err
	}
	if _, err := s.putSecretData(ctx, nodeSecretName(to), map[string]string{labelNode: to}, sec.Data); err != nil {
		return err
	}
	return s.dropNodeSecret(ctx, from)
}

func (s *Store) dropNodeSecret(ctx context.Context, nodeName string) error {
	err := s.core.CoreV1().Secrets(s.ns).Delete(ctx, nodeSecretName(nodeName), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("drop secret of %s: %w", nodeName, kindErr(err))
	}
	return nil
}
