package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
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
