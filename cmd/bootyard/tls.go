package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"
)

// tlsOptions are the HTTPS settings of the operator listener (API and web page).
type tlsOptions struct {
	enabled       bool
	certFile      string
	keyFile       string
	machineListen string
}

func (t *tlsOptions) register(f *pflag.FlagSet) {
	f.BoolVar(&t.enabled, "tls", false, "serve the API and web page over HTTPS (a self-signed certificate is generated on first start unless --tls-cert/--tls-key are given)")
	f.StringVar(&t.certFile, "tls-cert", "", "PEM certificate for HTTPS (implies --tls)")
	f.StringVar(&t.keyFile, "tls-key", "", "PEM private key for HTTPS (implies --tls)")
	f.StringVar(&t.machineListen, "machine-listen", "", "plain-HTTP address:port for machines (iPXE scripts, NoCloud, images, agent); default with --tls: the --listen host, port 8081")
}

// on reports whether the operator listener speaks HTTPS.
func (t *tlsOptions) on() bool { return t.enabled || t.certFile != "" || t.keyFile != "" }

// config loads the given certificate or the generated one under <data>/tls.
func (t *tlsOptions) config(dataDir, listen string, log *slog.Logger) (*tls.Config, error) {
	if !t.on() {
		return nil, nil
	}
	if (t.certFile == "") != (t.keyFile == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	certFile, keyFile := t.certFile, t.keyFile
	if certFile == "" {
		dir := filepath.Join(dataDir, "tls")
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		created, err := ensureSelfSigned(certFile, keyFile, listen)
		if err != nil {
			return nil, fmt.Errorf("self-signed certificate: %w", err)
		}
		if created {
			log.Info("generated a self-signed certificate; browsers will ask to trust it", slog.String("cert", certFile))
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// machineAddr is where machines' plain HTTP is served when it is apart from --listen.
func (t *tlsOptions) machineAddr(listen string) string {
	if t.machineListen != "" || !t.on() {
		return t.machineListen
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return ""
	}
	return net.JoinHostPort(host, "8081")
}

// ensureSelfSigned writes an ECDSA certificate for the listen host, localhost and this
// machine's name, unless one exists: the same certificate across restarts, so browsers
// that trusted it once keep trusting it.
func ensureSelfSigned(certFile, keyFile, listen string) (bool, error) {
	if _, err := os.Stat(certFile); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return false, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "bootyard", Organization: []string{"Bootyard self-signed"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // so an operator can add it as a trust anchor as is
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		tmpl.DNSNames = append(tmpl.DNSNames, name)
	}
	if host, _, err := net.SplitHostPort(listen); err == nil {
		if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() && !ip.IsLoopback() {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if ip == nil && host != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return false, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return false, err
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return false, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return false, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return false, err
	}
	return true, nil
}
