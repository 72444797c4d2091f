package core

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// logBuffer is a slog.Handler that keeps each record as a line of its
// message and key=value attributes, the values unquoted.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Enabled(context.Context, slog.Level) bool { return true }
func (l *logBuffer) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l *logBuffer) WithGroup(string) slog.Handler            { return l }

func (l *logBuffer) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.WriteString(r.Level.String() + " " + r.Message)
	r.Attrs(func(a slog.Attr) bool {
		l.b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	})
	l.b.WriteString("\n")
	return nil
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// superviseLogged runs a Supervisor for cfg that logs into the returned
// buffer, until the test ends.
func superviseLogged(t *testing.T, cfg Config) (*Supervisor, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	cfg.Logger = slog.New(logs)
	s := NewSupervisor(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, ErrClosed) {
			t.Errorf("Run = %v, want ErrClosed", err)
		}
	})
	return s, logs
}

func certPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", file)
	}
	return p
}

func keyPair(t *testing.T, cert, key string) []tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return []tls.Certificate{c}
}

// TestTLS runs every case against one TLS-enabled node of the test's own
// (it takes about 10 s to start): logins with PLAIN and EXTERNAL over
// amqps://, and each misconfiguration, which must fail at once with a log
// line that says what is wrong and holds no password, while a connection
// made before them keeps working.
func TestTLS(t *testing.T) {
	node := brokertest.StartTLSNode(t)
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	password := "pw-" + hex.EncodeToString(secret)
	node.AddUser(t, "tls-plain", password)
	node.AddUser(t, "warren-client", "") // EXTERNAL only

	dir := t.TempDir()
	clientCert, clientKey := node.CA.Issue(t, dir, "client", brokertest.CertSpec{CommonName: "warren-client"})
	expiredCert, expiredKey := node.CA.Issue(t, dir, "expired", brokertest.CertSpec{CommonName: "warren-client", Expired: true})
	nobodyCert, nobodyKey := node.CA.Issue(t, dir, "nobody", brokertest.CertSpec{CommonName: "nobody"})
	other := brokertest.NewCA(t, dir, "other-ca")
	strangerCert, strangerKey := other.Issue(t, dir, "stranger", brokertest.CertSpec{CommonName: "warren-client"})

	_, tlsPort, _ := net.SplitHostPort(node.TLSAddr)
	plainPort := strings.TrimSuffix(node.URL[strings.LastIndex(node.URL, ":")+1:], "/")
	roots := certPool(t, node.CA.File)
	plainURL := "amqps://tls-plain:" + password + "@localhost:" + tlsPort + "/"

	// A connection made first must outlive every failed dial below.
	survivor, survivorLogs := superviseLogged(t, Config{URLs: []string{plainURL}, Name: "tls-survivor", TLS: &tls.Config{RootCAs: roots}})
	waitFor(t, "the survivor's connection", survivor.Connected)

	t.Run("connects", func(t *testing.T) {
		for _, tt := range []struct {
			name, url string
			tls       *tls.Config
			auth      Auth
			wantUser  string
			wantMech  string
		}{
			{"plain", plainURL, &tls.Config{RootCAs: roots}, AuthAuto, "tls-plain", "PLAIN"},
			{"plain to an IP address", "amqps://tls-plain:" + password + "@127.0.0.1:" + tlsPort + "/", &tls.Config{RootCAs: roots}, AuthAuto, "tls-plain", "PLAIN"},
			{"external chosen by a client certificate", "amqps://localhost:" + tlsPort + "/", &tls.Config{RootCAs: roots, Certificates: keyPair(t, clientCert, clientKey)}, AuthAuto, "warren-client", "EXTERNAL"},
			{"external asked for", "amqps://localhost:" + tlsPort + "/", &tls.Config{RootCAs: roots, Certificates: keyPair(t, clientCert, clientKey)}, AuthExternal, "warren-client", "EXTERNAL"},
			{"plain beside a client certificate", plainURL, &tls.Config{RootCAs: roots, Certificates: keyPair(t, clientCert, clientKey)}, AuthAuto, "tls-plain", "PLAIN"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				name := "conn-" + strings.ReplaceAll(tt.name, " ", "-")
				s, logs := superviseLogged(t, Config{URLs: []string{tt.url}, Name: name, TLS: tt.tls, Auth: tt.auth})
				waitFor(t, "a TLS connection", s.Connected)
				want := tt.wantUser + "\t" + tt.wantMech + "\ttrue\t"
				lines := node.Connections(t, "user", "auth_mechanism", "ssl", "client_properties")
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, want) && strings.Contains(l, `"`+name+`"`)
				}
				if !found {
					t.Errorf("the broker's connections (user, mechanism, ssl, client properties):\n%s\nwant %s's to start %q", strings.Join(lines, "\n"), name, want)
				}
				if strings.Contains(logs.String(), password) {
					t.Errorf("the log holds the password:\n%s", logs)
				}
			})
		}
	})

	t.Run("fails", func(t *testing.T) {
		for _, tt := range []struct {
			name, url string
			tls       *tls.Config
			auth      Auth
			want      []string // in the log line of a failed dial
		}{{
			name: "wrong CA", url: plainURL,
			tls:  &tls.Config{RootCAs: certPool(t, other.File)},
			want: []string{"TLS: the broker's certificate does not verify", "x509: certificate signed by unknown authority"},
		}, {
			name: "name not in the broker's certificate", url: plainURL,
			tls:  &tls.Config{RootCAs: roots, ServerName: "broker.example"},
			want: []string{"TLS: the broker's certificate does not verify", "not broker.example"},
		}, {
			name: "expired client certificate", url: "amqps://localhost:" + tlsPort + "/",
			tls: &tls.Config{RootCAs: roots, Certificates: keyPair(t, expiredCert, expiredKey)},
			// The broker's alert (remote error: tls: expired certificate)
			// may be lost to TLS 1.3's early end of the client's handshake;
			// the certificate's expiry is said either way.
			want: []string{"TLS: the broker ", `client certificate "CN=warren-client"`, ": expired)"},
		}, {
			name: "client certificate of a CA the broker does not trust", url: "amqps://localhost:" + tlsPort + "/",
			tls:  &tls.Config{RootCAs: roots, Certificates: keyPair(t, strangerCert, strangerKey)},
			want: []string{"TLS: the broker refused the connection: remote error: tls: unknown certificate authority", `issued by "CN=other-ca,O=warren tests"`},
		}, {
			name: "amqp:// to the TLS port", url: "amqp://tls-plain:" + password + "@127.0.0.1:" + tlsPort + "/",
			want: []string{"127.0.0.1:" + tlsPort + " answered with TLS: it is a TLS port, which needs an amqps:// URL"},
		}, {
			name: "amqps:// to the plaintext port", url: "amqps://tls-plain:" + password + "@localhost:" + plainPort + "/",
			tls:  &tls.Config{RootCAs: roots},
			want: []string{"TLS: localhost:" + plainPort + " answered in plaintext, not TLS"},
		}, {
			name: "amqps:// to the plaintext port with the system's roots", url: "amqps://tls-plain:" + password + "@localhost:" + plainPort + "/",
			want: []string{"TLS: localhost:" + plainPort + " answered in plaintext, not TLS"},
		}, {
			name: "external for a user the broker does not have", url: "amqps://localhost:" + tlsPort + "/",
			tls:  &tls.Config{RootCAs: roots, Certificates: keyPair(t, nobodyCert, nobodyKey)},
			want: []string{"EXTERNAL login refused", `common name "nobody"`},
		}, {
			name: "external without a client certificate", url: "amqps://localhost:" + tlsPort + "/",
			tls: &tls.Config{RootCAs: roots}, auth: AuthExternal,
			want: []string{"EXTERNAL login needs a client certificate"},
		}, {
			name: "wrong password", url: "amqps://tls-plain:" + password + "x@localhost:" + tlsPort + "/",
			tls:  &tls.Config{RootCAs: roots},
			want: []string{`login refused for user "tls-plain" on vhost "/": username or password not allowed`},
		}, {
			name: "invalid URL", url: "amqps://tls-plain:" + password + "@localhost:" + tlsPort + "x/",
			want: []string{`invalid broker URL: invalid port ":` + tlsPort + `x" after host`, "url=<invalid url>"},
		}} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				// The dial timeout is long: a failure that comes before
				// it is the broker's answer, not a hang cut short.
				s, logs := superviseLogged(t, Config{URLs: []string{tt.url}, Name: "tls-fail", TLS: tt.tls, Auth: tt.auth, DialTimeout: 20 * time.Second})
				waitFor(t, "two failed dials", func() bool { return strings.Count(logs.String(), "amqp connect failed") >= 2 })
				// A refused login costs 3 s: the broker delays its answer.
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("two failed dials took %v, want well within the dial timeout (20s)", d)
				}
				if s.Connected() {
					t.Error("Connected() = true, want false")
				}
				got := logs.String()
				for _, w := range tt.want {
					if !strings.Contains(got, w) {
						t.Errorf("log:\n%s\nwant it to say %q", got, w)
					}
				}
				if strings.Contains(got, password) {
					t.Errorf("the log holds the password:\n%s", got)
				}
				t.Logf("log: %s", firstLine(got, "amqp connect failed"))
			})
		}
	})

	if !survivor.Connected() {
		t.Error("the connection made before the failed dials is gone")
	}
	if n := strings.Count(survivorLogs.String(), "amqp connected"); n != 1 {
		t.Errorf("the survivor connected %d times, want once:\n%s", n, survivorLogs)
	}
}

func firstLine(logs, containing string) string {
	for l := range strings.SplitSeq(logs, "\n") {
		if strings.Contains(l, containing) {
			return l
		}
	}
	return ""
}

// TestAuthChoice checks which SASL mechanism a dial uses, without a broker.
func TestAuthChoice(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := brokertest.NewCA(t, dir, "ca")
	certFile, keyFile := ca.Issue(t, dir, "c", brokertest.CertSpec{CommonName: "c"})
	withCert := &tls.Config{Certificates: keyPair(t, certFile, keyFile)}
	for _, tt := range []struct {
		name    string
		url     string
		tls     *tls.Config
		auth    Auth
		want    string // the mechanism, or "" for amqp091-go's choice
		wantErr string
	}{
		{"certificate, no user", "amqps://broker/", withCert, AuthAuto, "EXTERNAL", ""},
		{"certificate, user without password", "amqps://alice@broker/", withCert, AuthAuto, "EXTERNAL", ""},
		{"certificate and password", "amqps://alice:pw@broker/", withCert, AuthAuto, "", ""},
		{"certificate, auth_mechanism in the URL", "amqps://broker/?auth_mechanism=amqplain", withCert, AuthAuto, "", ""},
		{"no certificate", "amqps://broker/", &tls.Config{}, AuthAuto, "", ""},
		{"no TLS config", "amqps://broker/", nil, AuthAuto, "", ""},
		{"certificate on amqp://", "amqp://broker/", withCert, AuthAuto, "", ""},
		{"plain asked for", "amqps://broker/", withCert, AuthPlain, "PLAIN", ""},
		{"external asked for", "amqps://broker/", withCert, AuthExternal, "EXTERNAL", ""},
		{"external on amqp://", "amqp://broker/", withCert, AuthExternal, "", "EXTERNAL login needs an amqps:// URL"},
		{"external without a certificate", "amqps://broker/", &tls.Config{}, AuthExternal, "", "EXTERNAL login needs a client certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a, err := newAttempt(tt.url, Config{TLS: tt.tls, Auth: tt.auth})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("newAttempt = %v, want an error saying %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if len(a.sasl) > 0 {
				got = a.sasl[0].Mechanism()
			}
			if got != tt.want {
				t.Errorf("mechanism = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAttemptTLSConfig: each dial gets its own copy of Config.TLS, named
// after the URL's host, so that URLs of different hosts do not share a
// ServerName, and the caller's config is left as it was.
func TestAttemptTLSConfig(t *testing.T) {
	t.Parallel()
	shared := &tls.Config{}
	a, err := newAttempt("amqps://one.example/", Config{TLS: shared})
	if err != nil {
		t.Fatal(err)
	}
	b, err := newAttempt("amqps://two.example:5999/", Config{TLS: shared})
	if err != nil {
		t.Fatal(err)
	}
	if a.tls.ServerName != "one.example" || b.tls.ServerName != "two.example" {
		t.Errorf("ServerName = %q and %q, want one.example and two.example", a.tls.ServerName, b.tls.ServerName)
	}
	if shared.ServerName != "" || shared.MinVersion != 0 {
		t.Errorf("the caller's config changed: ServerName %q, MinVersion %d", shared.ServerName, shared.MinVersion)
	}
	if a.tls.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", a.tls.MinVersion)
	}
	set, err := newAttempt("amqps://one.example/", Config{TLS: &tls.Config{ServerName: "broker.internal"}})
	if err != nil {
		t.Fatal(err)
	}
	if set.tls.ServerName != "broker.internal" {
		t.Errorf("ServerName = %q, want the configured broker.internal", set.tls.ServerName)
	}
	plain, err := newAttempt("amqp://one.example/", Config{TLS: shared})
	if err != nil {
		t.Fatal(err)
	}
	if plain.tls != nil {
		t.Error("an amqp:// URL got a TLS config")
	}
}

// TestInvalidURLHidesThePassword: the error of a URL that does not parse
// never quotes it.
func TestInvalidURLHidesThePassword(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"amqps://user:hunter2@broker:56x/",
		"amqps://user:hunter2@[::1/",
		"amqps://user:hun%zzter2@broker/",
		"amqps://user:hunter2@broker/?heartbeat=x",
		"http://user:hunter2@broker/",
	} {
		_, err := newAttempt(raw, Config{})
		if err == nil {
			t.Errorf("newAttempt(%q) = nil error", raw)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "%zz") {
			t.Errorf("newAttempt(%q) = %q, which shows the password", raw, err)
		}
	}
}

// TestReason: amqp091-go nests the failure to read the handshake in two
// Exception texts; reason unwraps them.
func TestReason(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		err  error
		want string
	}{
		{&amqp.Error{Code: 501, Reason: `Exception (501) Reason: "frame size exceeds negotiated frame_max"`}, "frame size exceeds negotiated frame_max"},
		{&amqp.Error{Code: 501, Reason: "remote error: tls: expired certificate"}, "remote error: tls: expired certificate"},
		{errors.New("EOF"), "EOF"},
	} {
		if got := reason(tt.err); got != tt.want {
			t.Errorf("reason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestSilentPortExplained: a port that accepts connections and never
// answers (not the broker's) fails each dial at the dial timeout, and the
// log says so, for amqp:// and amqps:// alike.
func TestSilentPortExplained(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c) // held open, never answered
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		_ = lis.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	addr := lis.Addr().String()
	for _, tt := range []struct{ url, want string }{
		{"amqp://guest:guest@" + addr + "/", "dial: no AMQP handshake with " + addr + " within 300ms: is it the broker's port?"},
		{"amqps://guest:guest@" + addr + "/", "dial: no TLS or AMQP handshake with " + addr + " within 300ms: is it the broker's port?"},
	} {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			_, logs := superviseLogged(t, Config{URLs: []string{tt.url}, DialTimeout: 300 * time.Millisecond})
			waitFor(t, "a failed dial", func() bool { return strings.Contains(logs.String(), "amqp connect failed") })
			got := firstLine(logs.String(), "amqp connect failed")
			if !strings.Contains(got, tt.want) {
				t.Errorf("log line %q, want it to say %q", got, tt.want)
			}
			t.Logf("log: %s", got)
		})
	}
}

// TestExplainALostAlert: when the broker's TLS alert for a refused client
// certificate is lost (TLS 1.3 ends the client's handshake first, and
// amqp091-go then reports only the closed connection), the dial's error
// still says that the broker closed it after the TLS handshake, and what
// the client certificate is; an error before any TLS byte, or the broker's
// own AMQP answer, is not explained that way.
func TestExplainALostAlert(t *testing.T) {
	t.Parallel()
	leaf := &x509.Certificate{
		Subject: pkix.Name{CommonName: "warren-client"}, Issuer: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
	}
	closed := &amqp.Error{Code: amqp.ChannelError, Reason: "channel/connection is not open"}
	for _, tt := range []struct {
		name  string
		first int32
		err   error
		want  string
	}{
		{"alert lost after the handshake", tlsHandshake, closed, `TLS: the broker closed the connection after the TLS handshake, as it does when it refuses the client certificate: channel/connection is not open (client certificate "CN=warren-client", issued by "CN=ca"`},
		{"nothing read: not TLS's doing", -1, closed, closed.Error()},
		{"the broker's AMQP answer", tlsHandshake, &amqp.Error{Code: amqp.NotAllowed, Reason: "vhost closed"}, `Exception (530) Reason: "vhost closed"`},
	} {
		a, err := newAttempt("amqps://localhost:5671/", Config{})
		if err != nil {
			t.Fatal(err)
		}
		a.leaf = leaf
		a.first.Store(tt.first)
		got := a.explain(tt.err).Error()
		if !strings.HasPrefix(got, tt.want) && got != tt.want {
			t.Errorf("%s: %q, want it to begin %q", tt.name, got, tt.want)
		}
		if tt.first == tlsHandshake && tt.err == closed && !strings.HasSuffix(got, ": expired)") {
			t.Errorf("%s: %q does not say the certificate expired", tt.name, got)
		}
	}
}
