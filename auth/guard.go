package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
)

// DefaultReloadInterval is Config.ReloadInterval's default.
const DefaultReloadInterval = 200 * time.Millisecond

// Config configures a Guard.
type Config struct {
	// PolicyFile is the authorization policy (see Policy), reloaded when
	// it changes. Default "": every authenticated caller may call every
	// method, and no key is scoped.
	PolicyFile string
	// TokensFile maps bearer tokens to principals (see Tokens), reloaded
	// when it changes. Default "": bearer tokens are refused, and only
	// client certificates authenticate.
	TokensFile string
	// JWKSFile is a JSON Web Key Set (see JWKS), reloaded when it
	// changes: a bearer token that is a JWT signed by one of its keys is
	// its subject's. Default "": JWTs are looked up in TokensFile like any
	// token.
	JWKSFile string
	// JWT are the claims a JWT must carry besides exp. Default: any
	// issuer, any audience.
	JWT JWTClaims
	// ReloadInterval is how often the files are checked for changes (their
	// modification time and size). Default: DefaultReloadInterval.
	ReloadInterval time.Duration
	// Logger hears about reloads and reloads that failed. Default:
	// slog.Default().
	Logger *slog.Logger
}

// Guard authenticates and authorizes the gateway's calls: installed as
// unary and stream interceptors (gateway.Config.Auth), it finds who calls
// (a bearer token, else a verified client certificate, else nobody),
// answers UNAUTHENTICATED to a bad token and to an anonymous call the
// policy does not allow, PERMISSION_DENIED to a principal the policy does
// not allow, and otherwise runs the call with its Identity (Principal)
// and a core.KeyGuard in its context, so that the core checks every
// routing and binding key against the principal's scopes before it
// publishes or binds.
//
// Concurrency: the interceptors are safe for concurrent use. Run, called
// once, watches the files: a changed file is read again and takes effect
// for every call from then on; a call already running (an open stream)
// keeps what it was allowed. A file that no longer parses is logged and
// ignored, and the last good one stays in force.
type Guard struct {
	cfg    Config
	policy atomic.Pointer[Policy]
	tokens atomic.Pointer[Tokens]
	jwks   atomic.Pointer[JWKS]
	files  []*watched
}

// New returns a Guard with the files of cfg loaded; an unreadable or
// malformed file is an error.
func New(cfg Config) (*Guard, error) {
	if cfg.ReloadInterval <= 0 {
		cfg.ReloadInterval = DefaultReloadInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Guard{cfg: cfg}
	if cfg.PolicyFile != "" {
		w := &watched{path: cfg.PolicyFile, what: "authorization policy", load: func(b []byte) error {
			p, err := ParsePolicy(b)
			if err == nil {
				g.policy.Store(p)
			}
			return err
		}}
		if err := w.init(); err != nil {
			return nil, err
		}
		g.files = append(g.files, w)
	}
	if cfg.TokensFile != "" {
		w := &watched{path: cfg.TokensFile, what: "tokens", load: func(b []byte) error {
			t, err := ParseTokens(b)
			if err == nil {
				g.tokens.Store(t)
			}
			return err
		}}
		if err := w.init(); err != nil {
			return nil, err
		}
		g.files = append(g.files, w)
	}
	if cfg.JWKSFile != "" {
		w := &watched{path: cfg.JWKSFile, what: "JWKS", load: func(b []byte) error {
			k, err := ParseJWKS(b)
			if err == nil {
				g.jwks.Store(k)
			}
			return err
		}}
		if err := w.init(); err != nil {
			return nil, err
		}
		g.files = append(g.files, w)
	}
	return g, nil
}

// Run checks the files every ReloadInterval until ctx ends.
func (g *Guard) Run(ctx context.Context) {
	if len(g.files) == 0 {
		return
	}
	t := time.NewTicker(g.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			for _, w := range g.files {
				w.check(g.cfg.Logger)
			}
		}
	}
}

// Policy is the policy in force; nil without a PolicyFile.
func (g *Guard) Policy() *Policy { return g.policy.Load() }

// ErrNoCredential: the call carries neither a bearer token nor a client
// certificate, and the policy does not allow anonymous calls to the
// method.
var ErrNoCredential = errors.New("auth: no credential: send a bearer token (authorization: Bearer ...) or a client certificate")

// Authorize authenticates the call of ctx to method and decides whether
// it may go on: the context to run it with (its Identity and KeyGuard in
// it), or a gRPC status error.
func (g *Guard) Authorize(ctx context.Context, method string) (context.Context, error) {
	id, err := g.authenticate(ctx, metadata.ValueFromIncomingContext(ctx, "authorization"))
	if err != nil {
		return nil, err
	}
	if p := g.policy.Load(); p != nil {
		// The call's metadata is copied out of gRPC's context only for a
		// policy that matches on headers; authentication reads one key.
		var md metadata.MD
		if p.readsHeaders() {
			md, _ = metadata.FromIncomingContext(ctx)
		}
		d := p.Authorize(id, method, md)
		switch {
		case !d.Allowed && id.Principal == "":
			return nil, status.Errorf(codes.Unauthenticated, "%v (%s)", ErrNoCredential, method)
		case !d.Allowed && d.Rule != "":
			return nil, status.Errorf(codes.PermissionDenied, "auth: principal %q may not call %s (deny rule %q)", id.Principal, method, d.Rule)
		case !d.Allowed:
			return nil, status.Errorf(codes.PermissionDenied, "auth: principal %q may not call %s (no allow rule matches)", id.Principal, method)
		}
	} else if id.Principal == "" {
		return nil, status.Errorf(codes.Unauthenticated, "%v (%s)", ErrNoCredential, method)
	}
	ctx = withIdentity(ctx, id)
	return core.WithKeyGuard(ctx, keyGuard{g: g, principal: id.Principal}), nil
}

// CallPrincipal is the principal of the call of ctx: the one the Guard
// put in ctx (Principal) when the Guard saw it, else the one its
// credentials name (a bearer token in its incoming metadata, a verified
// client certificate of its peer), "" when they name none. It suits
// gateway.Config.Principal, whose context comes from outside the Guard's
// interceptors.
func (g *Guard) CallPrincipal(ctx context.Context) string {
	if id, ok := FromContext(ctx); ok {
		return id.Principal
	}
	id, err := g.authenticate(ctx, metadata.ValueFromIncomingContext(ctx, "authorization"))
	if err != nil {
		return ""
	}
	return id.Principal
}

// authenticate finds who calls: the principal of a bearer token, else of
// a verified client certificate, else nobody. authorization is the
// call's authorization metadata. A token that is malformed or unknown is
// an error, whatever the certificate says.
func (g *Guard) authenticate(ctx context.Context, authorization []string) (Identity, error) {
	if vs := authorization; len(vs) > 0 {
		if len(vs) > 1 {
			return Identity{}, status.Error(codes.Unauthenticated, "auth: more than one authorization header")
		}
		scheme, token, ok := strings.Cut(vs[0], " ")
		token = strings.TrimSpace(token)
		if !ok || !strings.EqualFold(scheme, "bearer") || token == "" {
			return Identity{}, status.Error(codes.Unauthenticated, `auth: malformed authorization header: want "Bearer <token>"`)
		}
		if k := g.jwks.Load(); k != nil && looksLikeJWT(token) {
			principal, err := k.Verify(token, g.cfg.JWT, time.Now())
			if err != nil {
				return Identity{}, status.Errorf(codes.Unauthenticated, "auth: %v", err)
			}
			return Identity{Principal: principal, Via: ViaJWT}, nil
		}
		t := g.tokens.Load()
		if t == nil {
			return Identity{}, status.Error(codes.Unauthenticated, "auth: this gateway accepts no such bearer token (it has no tokens file)")
		}
		principal, ok := t.Lookup(token)
		if !ok {
			return Identity{}, status.Error(codes.Unauthenticated, "auth: unknown bearer token")
		}
		return Identity{Principal: principal, Via: ViaToken}, nil
	}
	if cert := peerCert(ctx); cert != nil {
		principal := CertPrincipal(cert)
		if principal == "" {
			return Identity{}, status.Error(codes.Unauthenticated, "auth: the client certificate names no principal (no SAN, no common name)")
		}
		return Identity{Principal: principal, Via: ViaCertificate}, nil
	}
	return Identity{}, nil
}

// keyGuard is the core.KeyGuard of one call: the principal's scopes in the
// policy in force when the key is checked.
type keyGuard struct {
	g         *Guard
	principal string
}

func (k keyGuard) AllowKey(op core.KeyOp, exchange, key string) error {
	p := k.g.policy.Load()
	if p == nil {
		return nil
	}
	return p.AllowKey(k.principal, op, exchange, key)
}

// UnaryServerInterceptor authorizes unary calls.
func (g *Guard) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		ctx, err := g.Authorize(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
}

// StreamServerInterceptor authorizes streaming calls.
func (g *Guard) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		ctx, err := g.Authorize(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return h(srv, &stream{ServerStream: ss, ctx: ctx})
	}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

// watched is a file loaded by load, and loaded again when its
// modification time or size changes.
type watched struct {
	path  string
	what  string
	load  func([]byte) error
	mtime time.Time
	size  int64
}

func (w *watched) init() error {
	fi, err := os.Stat(w.path)
	if err != nil {
		return fmt.Errorf("auth: %s: %w", w.what, err)
	}
	b, err := os.ReadFile(w.path)
	if err != nil {
		return fmt.Errorf("auth: %s: %w", w.what, err)
	}
	if err := w.load(b); err != nil {
		return fmt.Errorf("%s %s: %w", w.what, w.path, err)
	}
	w.mtime, w.size = fi.ModTime(), fi.Size()
	return nil
}

// check loads the file again if it changed; a file that fails to load is
// logged, and the last good one stays.
func (w *watched) check(log *slog.Logger) {
	fi, err := os.Stat(w.path)
	if err != nil {
		if w.size >= 0 {
			log.Warn("auth: cannot read file; keeping the last good one", "file", w.path, "what", w.what, "err", err)
			w.size = -1 // log once, and read it again when it is back
		}
		return
	}
	if fi.ModTime().Equal(w.mtime) && fi.Size() == w.size {
		return
	}
	w.mtime, w.size = fi.ModTime(), fi.Size()
	b, err := os.ReadFile(w.path)
	if err == nil {
		err = w.load(b)
	}
	if err != nil {
		log.Warn("auth: reload failed; keeping the last good one", "file", w.path, "what", w.what, "err", err)
		return
	}
	log.Info("auth: reloaded", "file", w.path, "what", w.what)
}
