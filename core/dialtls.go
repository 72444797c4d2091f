package core

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Auth selects the SASL mechanism a Supervisor logs in to the broker with.
type Auth int

const (
	// AuthAuto logs in with EXTERNAL when the URL is amqps://, Config.TLS
	// holds a client certificate and the URL has no password; otherwise as
	// amqp091-go does: with the URL's auth_mechanism query parameter if it
	// has one, else PLAIN with the URL's user and password (guest and
	// guest when it names none).
	AuthAuto Auth = iota
	// AuthPlain logs in with PLAIN, the URL's user and password.
	AuthPlain
	// AuthExternal logs in with EXTERNAL: the broker takes the user from
	// the client certificate (RabbitMQ's rabbitmq_auth_mechanism_ssl
	// plugin). It needs an amqps:// URL and a client certificate.
	AuthExternal
)

// ParseAuth reads "auto" (or ""), "plain" or "external".
func ParseAuth(s string) (Auth, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return AuthAuto, nil
	case "plain":
		return AuthPlain, nil
	case "external":
		return AuthExternal, nil
	}
	return 0, fmt.Errorf("core: unknown auth mechanism %q (want auto, plain or external)", s)
}

func (a Auth) String() string {
	switch a {
	case AuthAuto:
		return "auto"
	case AuthPlain:
		return "plain"
	case AuthExternal:
		return "external"
	}
	return "Auth(" + strconv.Itoa(int(a)) + ")"
}

// attempt is one dial of one URL: what it sends, and what it saw of the
// broker, to explain a failure.
type attempt struct {
	uri      amqp.URI
	tls      *tls.Config // nil: amqp091-go's own for amqps://
	sasl     []amqp.Authentication
	external bool
	leaf     *x509.Certificate // the client certificate, nil without one
	timeout  time.Duration
	first    atomic.Int32 // the first byte the broker sent, -1 before any
	timedOut atomic.Bool  // a read from the broker hit the dial's deadline
}

// newAttempt prepares a dial of raw with cfg's TLS and Auth. An invalid
// URL's error never holds the URL, which may hold a password.
func newAttempt(raw string, cfg Config) (*attempt, error) {
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		return nil, invalidURL(err)
	}
	a := &attempt{uri: uri, timeout: cfg.DialTimeout}
	a.first.Store(-1)
	secure := uri.Scheme == "amqps"
	if secure && cfg.TLS != nil {
		a.tls = cfg.TLS.Clone()
		if a.tls.ServerName == "" {
			a.tls.ServerName = uri.ServerName
		}
		if a.tls.ServerName == "" {
			a.tls.ServerName = uri.Host
		}
		if a.tls.MinVersion == 0 {
			a.tls.MinVersion = tls.VersionTLS12
		}
		if len(a.tls.Certificates) > 0 && a.tls.GetClientCertificate == nil {
			// Send the certificate even when the broker's list of the CAs
			// it trusts does not name its issuer (Go's default would send
			// none): the broker then says why it refuses it, instead of a
			// login failing for want of a certificate.
			cert := &a.tls.Certificates[0]
			a.tls.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
			a.leaf = cert.Leaf
			if a.leaf == nil && len(cert.Certificate) > 0 {
				a.leaf, _ = x509.ParseCertificate(cert.Certificate[0])
			}
		}
	}
	hasCert := a.tls != nil && a.tls.GetClientCertificate != nil
	u, _ := url.Parse(raw) // parsed by ParseURI already
	_, hasPassword := u.User.Password()
	switch cfg.Auth {
	case AuthPlain:
		a.sasl = []amqp.Authentication{uri.PlainAuth()}
	case AuthExternal:
		if !secure {
			return nil, errors.New("EXTERNAL login needs an amqps:// URL")
		}
		if !hasCert {
			return nil, errors.New("EXTERNAL login needs a client certificate (core.Config.TLS)")
		}
		a.sasl, a.external = []amqp.Authentication{&amqp.ExternalAuth{}}, true
	default:
		if secure && hasCert && !hasPassword && len(uri.AuthMechanism) == 0 {
			a.sasl, a.external = []amqp.Authentication{&amqp.ExternalAuth{}}, true
		}
	}
	return a, nil
}

// invalidURL is err of amqp.ParseURI without the URL, which it quotes.
func invalidURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var esc url.EscapeError
		if errors.As(ue.Err, &esc) {
			// The escape may be part of the password.
			return errors.New("invalid broker URL: a bad %-escape (percent-encode reserved characters of a user or password)")
		}
		return fmt.Errorf("invalid broker URL: %v (percent-encode reserved characters of a user or password)", ue.Err)
	}
	return fmt.Errorf("invalid broker URL: %v", err)
}

// watch records what c reads from the broker that amqp091-go's error
// would hide: the first byte, which tells a TLS listener (a TLS record:
// alert or handshake) from an AMQP one, and a read that timed out.
func (a *attempt) watch(c net.Conn) net.Conn { return &watchedConn{Conn: c, a: a} }

type watchedConn struct {
	net.Conn
	a *attempt
}

func (c *watchedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.a.first.Load() < 0 {
		c.a.first.Store(int32(p[0]))
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.a.timedOut.Store(true)
	}
	return n, err
}

// A DialError is a failed dial explained: what the broker's answer, or
// its silence, most likely means. Unwrap returns the error of amqp091-go
// or of crypto/tls.
type DialError struct {
	msg string
	err error
}

func (e *DialError) Error() string { return e.msg }
func (e *DialError) Unwrap() error { return e.err }

// TLS record types a TLS listener may answer a plaintext client with.
const (
	tlsAlert     = 0x15
	tlsHandshake = 0x16
)

// explain turns the error of a failed dial into a DialError that says what
// went wrong in the words of the deployment, or returns err as it is.
func (a *attempt) explain(err error) error {
	addr := net.JoinHostPort(a.uri.Host, strconv.Itoa(a.uri.Port))
	var (
		verr *tls.CertificateVerificationError
		rec  tls.RecordHeaderError
		aerr *amqp.Error
	)
	isAMQP := errors.As(err, &aerr)
	switch first := a.first.Load(); {
	case errors.As(err, &verr):
		return &DialError{fmt.Sprintf("TLS: the broker's certificate does not verify (is the CA the one that signed it, and the URL's host a name it holds?): %v", err), err}
	case errors.As(err, &rec):
		return &DialError{fmt.Sprintf("TLS: %s answered in plaintext, not TLS: an amqps:// URL for the broker's amqp:// port? (%v)", addr, err), err}
	case a.uri.Scheme == "amqp" && (first == tlsAlert || first == tlsHandshake):
		// amqp091-go's own error (it read the TLS alert as a frame too
		// large) would only mislead.
		return &DialError{fmt.Sprintf("%s answered with TLS: it is a TLS port, which needs an amqps:// URL", addr), err}
	case strings.Contains(err.Error(), "remote error: tls: "):
		return &DialError{"TLS: the broker refused the connection: " + reason(err) + a.clientCert(), err}
	case isAMQP && aerr.Code == amqp.AccessRefused && a.external:
		if errors.Is(err, amqp.ErrSASL) {
			return &DialError{"EXTERNAL login refused: the broker does not offer EXTERNAL (it needs the rabbitmq_auth_mechanism_ssl plugin and EXTERNAL in auth_mechanisms)", err}
		}
		cn := "?"
		if a.leaf != nil {
			cn = a.leaf.Subject.CommonName
		}
		return &DialError{fmt.Sprintf("EXTERNAL login refused (%s): does the broker have a user named as the client certificate (common name %q), with access to vhost %q?", aerr.Reason, cn, a.uri.Vhost), err}
	case isAMQP && aerr.Code == amqp.AccessRefused:
		return &DialError{fmt.Sprintf("login refused for user %q on vhost %q: %s", a.uri.Username, a.uri.Vhost, aerr.Reason), err}
	case errors.Is(err, os.ErrDeadlineExceeded) || a.timedOut.Load() && first < 0:
		side := "AMQP"
		if a.uri.Scheme == "amqps" {
			side = "TLS or AMQP"
		}
		return &DialError{fmt.Sprintf("no %s handshake with %s within %v: is it the broker's port? (%s)", side, addr, a.timeout, reason(err)), err}
	case a.uri.Scheme == "amqps" && a.leaf != nil && first == tlsHandshake && !isAMQPReply(aerr):
		// With TLS 1.3 the client's handshake ends before the broker has
		// checked its certificate: the broker's alert may be lost to a
		// write on the connection it closed, so that amqp091-go reports
		// only the closed connection.
		return &DialError{"TLS: the broker closed the connection after the TLS handshake, as it does when it refuses the client certificate: " + reason(err) + a.clientCert(), err}
	}
	return err
}

// clientCert describes the client certificate, if any, for an error
// message: whom it names, who issued it, when it is valid, and whether it
// has expired.
func (a *attempt) clientCert() string {
	if a.leaf == nil {
		return ""
	}
	msg := fmt.Sprintf(" (client certificate %q, issued by %q, valid %s to %s",
		a.leaf.Subject.String(), a.leaf.Issuer.String(),
		a.leaf.NotBefore.UTC().Format(time.RFC3339), a.leaf.NotAfter.UTC().Format(time.RFC3339))
	if time.Now().After(a.leaf.NotAfter) {
		msg += ": expired"
	}
	return msg + ")"
}

// isAMQPReply reports whether e is the broker's AMQP answer (a refused
// login, a closed vhost), not a failure to read or write the handshake,
// which amqp091-go reports as a 501 or 504 exception.
func isAMQPReply(e *amqp.Error) bool {
	return e != nil && e.Code != amqp.FrameError && e.Code != amqp.ChannelError
}

// reason is the text of err without amqp091-go's "Exception (501) Reason:"
// wrapping, which it puts around any failure to read the handshake.
func reason(err error) string {
	var aerr *amqp.Error
	if errors.As(err, &aerr) {
		r := aerr.Reason
		// A frame error is reported nested: Exception (501) Reason: "Exception (501) ...".
		for {
			var inner string
			if _, scanErr := fmt.Sscanf(r, "Exception (%d) Reason: %q", new(int), &inner); scanErr != nil {
				return r
			}
			r = inner
		}
	}
	return err.Error()
}
