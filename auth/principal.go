package auth

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// How a caller proved who it is.
const (
	ViaToken       = "token"
	ViaJWT         = "jwt"
	ViaCertificate = "certificate"
)

// Identity is who a call comes from.
type Identity struct {
	// Principal is the caller's name: a bearer token's principal (from
	// the tokens file, or a JWT's subject), or its client certificate's first URI SAN, else
	// first DNS SAN, else subject common name. "" for an anonymous call.
	Principal string
	// Via is ViaToken, ViaJWT or ViaCertificate; "" for an anonymous
	// call.
	Via string
}

type identityKey struct{}

// withIdentity returns ctx carrying id.
func withIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// FromContext returns the identity the Guard found for the call of ctx.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Principal is the principal of the call of ctx, "" when it is anonymous
// or no Guard saw it. It is the access log's principal
// (gateway.Config.Principal).
func Principal(ctx context.Context) string {
	id, _ := FromContext(ctx)
	return id.Principal
}

// CertPrincipal is the principal a certificate names: its first URI SAN
// (spiffe://example.org/tenant/x), else its first DNS SAN, else its
// subject's common name; "" when it names none. grpc's own authorization
// engine reads certificates in the same order.
func CertPrincipal(cert *x509.Certificate) string {
	switch {
	case len(cert.URIs) > 0:
		return cert.URIs[0].String()
	case len(cert.DNSNames) > 0:
		return cert.DNSNames[0]
	}
	return cert.Subject.CommonName
}

// peerCert returns the verified client certificate of the call of ctx, if
// its connection is TLS and the client presented one the server verified.
func peerCert(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}
