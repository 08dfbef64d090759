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
)

const adminTokenFile = "admin-token"

// loadAdminToken returns BOOTYARD_ADMIN_TOKEN, or the token in <data>/admin-token,
// generating that file (mode 0600) on first start. created tells the caller to print the
// path once.
func loadAdminToken(dataDir string) (tok node.Secret, path string, created bool, err error) {
	if v := strings.TrimSpace(os.Getenv("BOOTYARD_ADMIN_TOKEN")); v != "" {
		return node.Secret(v), "", false, nil
	}
	path = filepath.Join(dataDir, adminTokenFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return node.Secret(v), path, false, nil
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
