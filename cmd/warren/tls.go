package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/warrenrpc/warren/auth"
	"github.com/warrenrpc/warren/gateway"
)

// serverSecurityFlags are the TLS and auth flags of gateway and dev.
type serverSecurityFlags struct {
	cert, key, clientCA string
	policy, tokens      string
	jwks                string
	jwt                 auth.JWTClaims
}

func (f *serverSecurityFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.cert, "tls-cert", "", "serve gRPC over TLS only, with this PEM certificate (chain); reloaded when the file changes")
	fs.StringVar(&f.key, "tls-key", "", "the PEM key of --tls-cert")
	fs.StringVar(&f.clientCA, "tls-client-ca", "", "mutual TLS: verify client certificates against these PEM CAs (required, unless --auth-tokens or --auth-jwks lets callers use a token instead); a certificate's SAN or CN is its principal")
	fs.StringVar(&f.policy, "auth-policy", "", "authorization policy (grpc authz JSON, plus routing-key \"scopes\"); reloaded when the file changes")
	fs.StringVar(&f.tokens, "auth-tokens", "", `bearer tokens file: "<sha256 hex of the token> <principal>" per line; reloaded when the file changes`)
	fs.StringVar(&f.jwks, "auth-jwks", "", "JSON Web Key Set: a bearer JWT (RS256 or ES256) signed by one of its keys is its subject's; reloaded when the file changes")
	fs.StringVar(&f.jwt.Issuer, "auth-jwt-issuer", "", "the iss a JWT must carry (default: any)")
	fs.StringVar(&f.jwt.Audience, "auth-jwt-audience", "", "an aud a JWT must carry (default: any)")
}

// apply sets the TLS and Auth of the gateway's configuration.
func (f *serverSecurityFlags) apply(cfg *gateway.Config) error {
	if (f.cert == "") != (f.key == "") {
		return usagef("--tls-cert and --tls-key go together")
	}
	if f.clientCA != "" && f.cert == "" {
		return usagef("--tls-client-ca needs --tls-cert and --tls-key")
	}
	if f.cert != "" {
		t, err := gateway.NewTLS(gateway.TLSFiles{
			CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.clientCA,
			ClientCertOptional: f.tokens != "" || f.jwks != "", Logger: cfg.Logger,
		})
		if err != nil {
			return err
		}
		cfg.TLS = t
	}
	if (f.jwt != auth.JWTClaims{}) && f.jwks == "" {
		return usagef("--auth-jwt-issuer and --auth-jwt-audience need --auth-jwks")
	}
	if f.policy != "" || f.tokens != "" || f.jwks != "" || f.clientCA != "" {
		g, err := auth.New(auth.Config{PolicyFile: f.policy, TokensFile: f.tokens, JWKSFile: f.jwks, JWT: f.jwt, Logger: cfg.Logger})
		if err != nil {
			return err
		}
		cfg.Auth = g
	}
	return nil
}

// clientSecurityFlags are the TLS and token flags of the client commands.
type clientSecurityFlags struct {
	ca, cert, key string
	token         secretValue
}

func (f *clientSecurityFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.ca, "tls-ca", "", "dial the gateway over TLS, trusting these PEM CAs (the system's when only --tls-cert is given)")
	fs.StringVar(&f.cert, "tls-cert", "", "client certificate (PEM) for mutual TLS")
	fs.StringVar(&f.key, "tls-key", "", "the PEM key of --tls-cert")
	fs.Var(&f.token, "token", "bearer token sent with every call (better in $WARREN_TOKEN than on the command line)")
}

// dialOptions are the transport and per-call credentials the flags ask
// for, to dial addr.
func (f *clientSecurityFlags) dialOptions(addr string) ([]grpc.DialOption, error) {
	if (f.cert == "") != (f.key == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	tlsOn := f.ca != "" || f.cert != ""
	var opts []grpc.DialOption
	if !tlsOn {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if f.ca != "" {
			pem, err := os.ReadFile(f.ca)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca %s: no PEM certificate in it", f.ca)
			}
			cfg.RootCAs = pool
		}
		if f.cert != "" {
			c, err := tls.LoadX509KeyPair(f.cert, f.key)
			if err != nil {
				return nil, fmt.Errorf("--tls-cert, --tls-key: %w", err)
			}
			cfg.Certificates = []tls.Certificate{c}
		}
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	}
	if tok := string(f.token); tok != "" {
		if !tlsOn && !loopback(addr) {
			return nil, usagef("--token needs TLS (--tls-ca) to %s: the token would cross the network in clear", addr)
		}
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(tok)))
	}
	return opts, nil
}

// loopback reports whether addr's host is this machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearer sends a bearer token with every call.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false: dialOptions refuses a token over
// plaintext to anything but loopback itself.
func (bearer) RequireTransportSecurity() bool { return false }

// secretValue is a string flag whose value help never shows.
type secretValue string

func (s *secretValue) String() string {
	if *s == "" {
		return ""
	}
	return "xxxxx"
}
func (s *secretValue) Type() string { return "string" }
func (s *secretValue) Set(v string) error {
	*s = secretValue(v)
	return nil
}
