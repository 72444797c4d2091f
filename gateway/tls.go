package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
)

// TLSFiles names the PEM files of the gateway's TLS.
type TLSFiles struct {
	// CertFile and KeyFile are the server's certificate (chain) and key.
	CertFile, KeyFile string
	// ClientCAFile, when set, holds the CAs that sign client
	// certificates: clients present one (mutual TLS), verified against
	// them, and its name is the caller's principal (package auth).
	// Default "": clients present none.
	ClientCAFile string
	// ClientCertOptional lets a client that presents no certificate
	// connect anyway (it may authenticate with a bearer token instead); a
	// certificate it does present is still verified. Default false: with
	// ClientCAFile, a client without a certificate fails the handshake.
	ClientCertOptional bool
	// Logger hears about reloads. Default: slog.Default().
	Logger *slog.Logger
}

// NewTLS loads files and returns the gateway's TLS configuration
// (Config.TLS): TLS 1.2 or later, and certificates read again from the
// files when they change (their modification time or size), checked at
// most every 200ms, on a handshake. A new certificate serves the
// connections that come after it; open connections and their streams
// keep theirs. Files that fail to load are logged and the last good ones
// stay in force.
func NewTLS(files TLSFiles) (*tls.Config, error) {
	if files.CertFile == "" || files.KeyFile == "" {
		return nil, errors.New("gateway: TLS needs a certificate and a key file")
	}
	if files.Logger == nil {
		files.Logger = slog.Default()
	}
	r := &tlsReloader{files: files}
	if err := r.load(); err != nil {
		return nil, err
	}
	r.checked = time.Now()
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		GetConfigForClient: r.config,
	}, nil
}

// tlsReloader holds the TLS configuration built from the files.
type tlsReloader struct {
	files TLSFiles

	mu      sync.Mutex
	cfg     *tls.Config
	stamps  [3]fileStamp // cert, key, client CA
	checked time.Time
}

type fileStamp struct {
	mtime time.Time
	size  int64
}

func (a fileStamp) equal(b fileStamp) bool { return a.mtime.Equal(b.mtime) && a.size == b.size }

func stamp(path string) fileStamp {
	if path == "" {
		return fileStamp{}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{size: -1}
	}
	return fileStamp{mtime: fi.ModTime(), size: fi.Size()}
}

func (r *tlsReloader) paths() [3]string {
	return [3]string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile}
}

// load reads the files and builds the configuration.
func (r *tlsReloader) load() error {
	var stamps [3]fileStamp
	for i, p := range r.paths() {
		stamps[i] = stamp(p)
	}
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return fmt.Errorf("gateway: TLS certificate %s, key %s: %w", r.files.CertFile, r.files.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
	}
	if r.files.ClientCAFile != "" {
		pem, err := os.ReadFile(r.files.ClientCAFile)
		if err != nil {
			return fmt.Errorf("gateway: TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("gateway: TLS client CA %s: no PEM certificate in it", r.files.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if r.files.ClientCertOptional {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	r.mu.Lock()
	r.cfg, r.stamps = cfg, stamps
	r.mu.Unlock()
	return nil
}

// config is tls.Config.GetConfigForClient: the configuration in force,
// first reloaded when a file changed.
func (r *tlsReloader) config(*tls.ClientHelloInfo) (*tls.Config, error) {
	r.mu.Lock()
	due := time.Since(r.checked) >= 200*time.Millisecond
	if due {
		r.checked = time.Now()
	}
	cfg, stamps := r.cfg, r.stamps
	r.mu.Unlock()
	if !due {
		return cfg, nil
	}
	changed := false
	for i, p := range r.paths() {
		if !stamp(p).equal(stamps[i]) {
			changed = true
		}
	}
	if !changed {
		return cfg, nil
	}
	if err := r.load(); err != nil {
		r.files.Logger.Warn("gateway: TLS reload failed; keeping the last good certificates", "err", err)
		r.mu.Lock()
		for i, p := range r.paths() {
			r.stamps[i] = stamp(p) // try again when they change again
		}
		r.mu.Unlock()
		return cfg, nil
	}
	r.files.Logger.Info("gateway: TLS certificates reloaded", "cert", r.files.CertFile)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cfg, nil
}

// tlsOnly wraps the listener of a TLS gateway so that a client speaking
// plaintext HTTP/2 hears why it fails: instead of a bare closed
// connection, it reads a SETTINGS frame and a GOAWAY whose debug data says
// the port speaks TLS only.
type tlsOnly struct{ net.Listener }

func (l tlsOnly) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c}, nil
}

// errPlaintext ends a plaintext connection to a TLS port.
var errPlaintext = errors.New("gateway: plaintext connection to a TLS port")

// plaintextReason is the debug data of the GOAWAY a plaintext client gets.
const plaintextReason = "warren: this port accepts TLS only; dial it with TLS (warren --tls-ca, grpcurl -cacert instead of -plaintext)"

// sniffConn looks at the first byte a client sends: a TLS record starts
// with 0x16 (handshake); anything else is refused (refusePlaintext).
type sniffConn struct {
	net.Conn
	sniffed bool
}

func (c *sniffConn) Read(p []byte) (int, error) {
	if c.sniffed || len(p) == 0 {
		return c.Conn.Read(p)
	}
	n, err := c.Conn.Read(p[:1])
	if n == 0 {
		return n, err
	}
	c.sniffed = true
	if p[0] != 0x16 {
		c.refusePlaintext(p[0])
		return 0, errPlaintext
	}
	return n, err
}

// refusePlaintext tells an HTTP/2 client why it is refused, in frames it
// reads: the server's SETTINGS, so that it sends its call, then, once its
// first HEADERS frame came, a GOAWAY that leaves the call open and says
// why, so that grpc reports the reason when the connection closes under
// the call ("received prior goaway: ... debug data: ..."). It reads at
// most 64 KiB for at most a second.
func (c *sniffConn) refusePlaintext(first byte) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte{0, 0, 0, 0x4, 0, 0, 0, 0, 0}); err != nil { // SETTINGS, no parameters
		return
	}
	r := bufio.NewReader(io.LimitReader(c.Conn, 64<<10))
	const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	if first != preface[0] {
		return // not HTTP/2
	}
	if _, err := r.Discard(len(preface) - 1); err != nil {
		return
	}
	var h [9]byte
	for {
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return
		}
		if h[3] == 0x1 { // HEADERS
			break
		}
		if _, err := r.Discard(int(h[0])<<16 | int(h[1])<<8 | int(h[2])); err != nil {
			return
		}
	}
	n := 8 + len(plaintextReason)
	g := []byte{byte(n >> 16), byte(n >> 8), byte(n), 0x7, 0, 0, 0, 0, 0} // GOAWAY on stream 0
	g = append(g, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0x1)                   // last stream: all; PROTOCOL_ERROR
	g = append(g, plaintextReason...)
	if _, err := c.Write(g); err != nil {
		return
	}
	// Read what the client sent before closing: a close with unread
	// data resets the connection, and the client might see the reset
	// before the GOAWAY.
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.Copy(io.Discard, r)
}

// lingerCreds are TLS server credentials that, when a handshake fails,
// let the client read the server's alert before the connection closes.
// With TLS 1.3 a client finishes its handshake before the server has
// verified its certificate, and writes at once; a server that closed with
// that data unread would reset the connection, and the client would
// report "broken pipe" instead of the alert ("tls: expired certificate").
type lingerCreds struct {
	credentials.TransportCredentials
}

func (c lingerCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	h := &holdClose{Conn: raw}
	h.hold.Store(true)
	conn, info, err := c.TransportCredentials.ServerHandshake(h)
	if err != nil {
		// The TLS credentials closed the connection (into h, which
		// held it): linger, then close.
		linger(raw)
		_ = raw.Close()
		return nil, nil, err
	}
	h.hold.Store(false)
	return conn, info, nil
}

// holdClose is a connection whose Close does nothing while hold is set.
type holdClose struct {
	net.Conn
	hold atomic.Bool
}

func (h *holdClose) Close() error {
	if h.hold.Load() {
		return nil
	}
	return h.Conn.Close()
}

func (c lingerCreds) Clone() credentials.TransportCredentials {
	return lingerCreds{c.TransportCredentials.Clone()}
}

// linger half-closes conn and reads what the peer still sends, for at
// most 100ms.
func linger(conn net.Conn) {
	type closeWriter interface{ CloseWrite() error }
	c := conn
	if s, ok := c.(*sniffConn); ok {
		c = s.Conn
	}
	if cw, ok := c.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
	_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
}
