package warrentest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// PKI is a test's certificate authority for gRPC's TLS: brokertest's CA,
// with the gateway's kinds of certificates. It writes PEM files into a
// directory of the test's own.
type PKI struct {
	t   testing.TB
	dir string
	ca  *brokertest.CA
	// CAFile is the CA's certificate.
	CAFile string
}

// NewPKI makes a CA named name, its certificate in dir/name-ca.pem.
func NewPKI(t testing.TB, dir, name string) *PKI {
	t.Helper()
	ca := brokertest.NewCA(t, dir, name+"-ca")
	return &PKI{t: t, dir: dir, ca: ca, CAFile: ca.File}
}

// Leaf describes a certificate to issue.
type Leaf struct {
	Name    string // of its files: Name.pem, Name.key
	CN      string // subject common name
	URI     string // a URI SAN
	Server  bool   // a server certificate for localhost and 127.0.0.1
	Expired bool   // expired an hour ago
}

// Issue writes l's certificate, signed by the CA, and its key, and
// returns their files.
func (p *PKI) Issue(l Leaf) (certFile, keyFile string) {
	p.t.Helper()
	spec := brokertest.CertSpec{CommonName: l.CN, URI: l.URI, Expired: l.Expired}
	if l.Server {
		spec.Hosts = []string{"localhost", "127.0.0.1"}
	}
	return p.ca.Issue(p.t, p.dir, l.Name, spec)
}

// ClientTLS is a client's TLS configuration: trusting caFile, presenting
// certFile when it is set.
func ClientTLS(t testing.TB, caFile, certFile, keyFile string) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg
}
