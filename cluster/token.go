package cluster

import (
	"context"
	"log/slog"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bootyard/bootyard/node"
)

// Where LLMOS keeps the cluster's join token. It stores the same string under
// agentToken; the server token lets a machine join as either role.
const (
	TokenNamespace = "llmos-system"
	TokenSecret    = "local-k8s-state"
	tokenKey       = "serverToken"
)

// syncJoinToken fills an empty join-token setting from the cluster's Secret. The value
// only ever travels as a node.Secret; logs name the Secret, never its content.
func (c *Controller) syncJoinToken(ctx context.Context) {
	settings, err := c.inv.ClusterSettings(ctx)
	if err != nil || settings.Token.IsSet() {
		return
	}
	secret, err := c.client.CoreV1().Secrets(TokenNamespace).Get(ctx, TokenSecret, metav1.GetOptions{})
	if err != nil {
		if ctx.Err() == nil && c.tokenNoted.CompareAndSwap(false, true) {
			level := slog.LevelWarn
			if apierrors.IsNotFound(err) {
				level = slog.LevelInfo
			}
			c.log.Log(ctx, level, "join token not set and not readable from the cluster",
				slog.String("secret", TokenNamespace+"/"+TokenSecret), slog.String("reason", string(apierrors.ReasonForError(err))))
		}
		return
	}
	token := node.Secret(strings.TrimSpace(string(secret.Data[tokenKey])))
	if !token.IsSet() {
		if c.tokenNoted.CompareAndSwap(false, true) {
			c.log.Warn("join token Secret has no value", slog.String("secret", TokenNamespace+"/"+TokenSecret), slog.String("key", tokenKey))
		}
		return
	}
	filled := false
	_, err = c.inv.UpdateClusterSettings(ctx, func(s *node.ClusterSettings) error {
		if !s.Token.IsSet() { // an operator may have set one meanwhile: theirs wins
			s.Token, filled = token, true
		}
		return nil
	})
	if err != nil {
		c.log.Warn("store the join token read from the cluster", slog.String("secret", TokenNamespace+"/"+TokenSecret), slog.Any("err", err))
		return
	}
	if filled {
		c.tokenNoted.Store(false)
		c.log.Info("join token read from the cluster", slog.String("secret", TokenNamespace+"/"+TokenSecret), slog.Any("token", token))
	}
}
