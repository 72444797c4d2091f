package gateway_test

import (
	"context"
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
)

// check calls health over conn.
func check(conn *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func newConn(t testing.TB, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestTLSFailures: each wrong way to connect fails with a clear error, and
// the gateway goes on serving the callers that connect right.
func TestTLSFailures(t *testing.T) {
	s := startSecured(t)
	// Exchanges of the test's own, not the tutorials': the shared broker
	// keeps nothing of it.
	logs := brokertest.Name(t, "logs")
	logCfg := logsvc.Config{FanoutExchange: logs + ".fanout", DirectExchange: logs + ".direct", TopicExchange: logs + ".topic", Logger: quietLog}
	plainGW := warrentest.StartGatewayTCP(t, gateway.Config{}, logsvc.New(logCfg))
	// Mutual TLS required: no token can stand in for a certificate.
	mtls, err := gateway.NewTLS(gateway.TLSFiles{CertFile: s.serverCert, KeyFile: s.serverKey, ClientCAFile: s.ca.CAFile, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	mtlsGW := warrentest.StartGatewayTCP(t, gateway.Config{TLS: mtls}, logsvc.New(logCfg))
	oldCert, oldKey := s.ca.Issue(warrentest.Leaf{Name: "server-expired", CN: "warren-gateway", Server: true, Expired: true})
	expired, err := gateway.NewTLS(gateway.TLSFiles{CertFile: oldCert, KeyFile: oldKey, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	expiredGW := warrentest.StartGatewayTCP(t, gateway.Config{TLS: expired}, logsvc.New(logCfg))
	emitLog := func(conn *grpc.ClientConn) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := warrenv1.NewLogServiceClient(conn).EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: "tenant.x.a"})
		return err
	}
	good := func(t *testing.T) {
		t.Helper()
		if err := check(s.dial(t, caller{cert: "cert-x"})); err != nil {
			t.Fatalf("a good caller after the failure: %v", err)
		}
	}
	tests := []struct {
		name string
		addr func() string
		cfg  func() credentials.TransportCredentials
		call func(*grpc.ClientConn) error // default: check
		code codes.Code                   // default: UNAVAILABLE
		// want are words the error says.
		want []string
	}{
		{
			// The client sends no certificate the server's CAs did
			// not sign; with tokens allowed, it is anonymous.
			name: "client certificate from another CA, tokens allowed",
			addr: func() string { return s.Addr },
			cfg: func() credentials.TransportCredentials {
				c := s.certs["cert-wrong-ca"]
				return credentials.NewTLS(warrentest.ClientTLS(t, s.ca.CAFile, c[0], c[1]))
			},
			call: emitLog,
			code: codes.Unauthenticated,
			want: []string{"no credential", "client certificate"},
		},
		{
			name: "client certificate from another CA, mutual TLS required",
			addr: func() string { return mtlsGW.Addr },
			cfg: func() credentials.TransportCredentials {
				c := s.certs["cert-wrong-ca"]
				return credentials.NewTLS(warrentest.ClientTLS(t, s.ca.CAFile, c[0], c[1]))
			},
			want: []string{"tls", "certificate required"},
		},
		{
			name: "expired client certificate",
			addr: func() string { return s.Addr },
			cfg: func() credentials.TransportCredentials {
				c := s.certs["cert-expired"]
				return credentials.NewTLS(warrentest.ClientTLS(t, s.ca.CAFile, c[0], c[1]))
			},
			want: []string{"tls", "expired"},
		},
		{
			name: "expired server certificate",
			addr: func() string { return expiredGW.Addr },
			cfg: func() credentials.TransportCredentials {
				return credentials.NewTLS(warrentest.ClientTLS(t, s.ca.CAFile, "", ""))
			},
			want: []string{"x509", "certificate has expired"},
		},
		{
			name: "client trusts another CA than the server's",
			addr: func() string { return s.Addr },
			cfg: func() credentials.TransportCredentials {
				return credentials.NewTLS(warrentest.ClientTLS(t, s.wrongCA.CAFile, "", ""))
			},
			want: []string{"x509", "certificate signed by unknown authority"},
		},
		{
			name: "plaintext to the TLS port",
			addr: func() string { return s.Addr },
			cfg:  insecure.NewCredentials,
			want: []string{"accepts TLS only"},
		},
		{
			name: "TLS to a plaintext port",
			addr: func() string { return plainGW.Addr },
			cfg: func() credentials.TransportCredentials {
				return credentials.NewTLS(warrentest.ClientTLS(t, s.ca.CAFile, "", ""))
			},
			want: []string{"tls", "first record does not look like a TLS handshake"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			call, code := tt.call, tt.code
			if call == nil {
				call, code = check, codes.Unavailable
			}
			err := call(newConn(t, tt.addr(), tt.cfg()))
			if status.Code(err) != code {
				t.Fatalf("got %v, want %v", err, code)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			t.Logf("%s: %v", tt.name, err)
			good(t)
		})
	}
}

// TestTLSCertificateReload: a new server certificate written over the
// files serves the next connection, and a stream open on the old one
// goes on.
func TestTLSCertificateReload(t *testing.T) {
	s := startSecured(t)
	conn := s.dial(t, caller{cert: "cert-x"})
	old := peerCertSerial(t, s.Addr, s.ca.CAFile)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := subscribe(t, ctx, conn, "tenant.x.#")

	// A certificate from the same CA with another serial, written over
	// the files as an operator (or cert-manager) would.
	c, k := s.ca.Issue(warrentest.Leaf{Name: "server2", CN: "warren-gateway-2", Server: true})
	for src, dst := range map[string]string{c: s.serverCert, k: s.serverKey} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var now string
	warrentest.Eventually(t, 5*time.Second, "a new connection gets the new certificate", func() bool {
		now = peerCertSerial(t, s.Addr, s.ca.CAFile)
		return now != old
	})
	t.Logf("certificate reloaded: serial %s → %s in %v", old, now, time.Since(start).Round(time.Millisecond))

	emit(t, s.dial(t, callers[0]), withToken(context.Background(), testTokens["tenant-x"]), "tenant.x.after-reload")
	if got := recvKey(t, sub); got != "tenant.x.after-reload" {
		t.Errorf("the open stream received %q, want tenant.x.after-reload", got)
	}
}

// peerCertSerial connects once and returns the serial of the server's
// certificate.
func peerCertSerial(t testing.TB, addr, caFile string) string {
	t.Helper()
	cfg := warrentest.ClientTLS(t, caFile, "", "")
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}
