package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/warrenrpc/warren/core"
)

// amqpTLSFlags are the TLS and login flags of the broker connection, for
// amqps:// URLs. The files are read once, when the command starts.
type amqpTLSFlags struct {
	ca, cert, key string
	auth          string
}

func (f *amqpTLSFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.ca, "amqp-ca", "", "PEM `FILE` of the CA certificates that verify the broker of an amqps:// URL (default: the system's)")
	fs.StringVar(&f.cert, "amqp-cert", "", "PEM `FILE` of the client certificate for amqps:// URLs, with --amqp-key")
	fs.StringVar(&f.key, "amqp-key", "", "PEM `FILE` of the private key of --amqp-cert")
	enumFlag(cmd, &f.auth, "amqp-auth", "auto",
		"broker login: auto (EXTERNAL, the user named by the client certificate, when --amqp-cert is given and the URL has no password; else PLAIN), plain (the URL's user and password) or external",
		"auto", "plain", "external")
}

// apply sets cfg.TLS and cfg.Auth from the flags, for cfg.URLs.
func (f *amqpTLSFlags) apply(cfg *core.Config) error {
	auth, err := core.ParseAuth(f.auth)
	if err != nil {
		return &usageError{err}
	}
	cfg.Auth = auth
	secure := false
	for _, u := range cfg.URLs {
		secure = secure || strings.HasPrefix(strings.ToLower(u), "amqps://")
	}
	switch {
	case (f.cert == "") != (f.key == ""):
		return usagef("--amqp-cert and --amqp-key go together")
	case !secure && (f.ca != "" || f.cert != ""):
		return usagef("--amqp-ca, --amqp-cert and --amqp-key are for amqps:// URLs, and --amqp-url has none")
	case auth == core.AuthExternal && (!secure || f.cert == ""):
		return usagef("--amqp-auth external needs an amqps:// URL and a client certificate (--amqp-cert, --amqp-key)")
	}
	if f.ca == "" && f.cert == "" {
		return nil // amqps:// verifies the broker with the system's roots
	}
	cfg.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	if f.ca != "" {
		pem, err := os.ReadFile(f.ca)
		if err != nil {
			return fmt.Errorf("--amqp-ca: %w", err)
		}
		cfg.TLS.RootCAs = x509.NewCertPool()
		if !cfg.TLS.RootCAs.AppendCertsFromPEM(pem) {
			return fmt.Errorf("--amqp-ca %s: no PEM certificate in it", f.ca)
		}
	}
	if f.cert != "" {
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return fmt.Errorf("--amqp-cert %s, --amqp-key %s: %w", f.cert, f.key, err)
		}
		cfg.TLS.Certificates = []tls.Certificate{cert}
	}
	return nil
}
