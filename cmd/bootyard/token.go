package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/bootyard/bootyard/node"
	"github.com/bootyard/bootyard/web"
)

const adminTokenFile = "admin-token"

// loadAdminToken returns the --admin-token setting (flag, BOOTYARD_ADMIN_TOKEN or the
// config file's admin-token), or the token in <data>/admin-token, generating that file
// (mode 0600) on first start. created tells the caller to print the path once. A token
// shorter than web.MinAdminTokenLen is refused wherever it comes from.
func loadAdminToken(dataDir, setting string) (tok node.Secret, path string, created bool, err error) {
	if v := strings.TrimSpace(setting); v != "" {
		return checkAdminToken(v, "--admin-token (or BOOTYARD_ADMIN_TOKEN)", "", false)
	}
	if v := strings.TrimSpace(os.Getenv("BOOTYARD_ADMIN_TOKEN")); v != "" {
		return checkAdminToken(v, "BOOTYARD_ADMIN_TOKEN", "", false)
	}
	path = filepath.Join(dataDir, adminTokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return checkAdminToken(v, path, path, false)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", "", false, fmt.Errorf("admin token: %w", err)
	}
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", "", false, fmt.Errorf("admin token: %w", err)
	}
	v := hex.EncodeToString(raw)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", "", false, fmt.Errorf("admin token: %w", err)
	}
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		return "", "", false, fmt.Errorf("admin token: %w", err)
	}
	return node.Secret(v), path, true, nil
}

func checkAdminToken(v, from, path string, created bool) (node.Secret, string, bool, error) {
	if len(v) < web.MinAdminTokenLen {
		return "", "", false, fmt.Errorf("admin token from %s has %d characters: use at least %d (it signs in to everything; e.g. openssl rand -hex 24)",
			from, len(v), web.MinAdminTokenLen)
	}
	return node.Secret(v), path, created, nil
}
