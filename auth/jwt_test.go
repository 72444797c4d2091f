package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var b64 = base64.RawURLEncoding

// signer signs test JWTs with one key of the test's JWKS.
type signer struct {
	kid string
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
}

func (s signer) alg() string {
	if s.rsa != nil {
		return "RS256"
	}
	return "ES256"
}

func (s signer) sign(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	if header == nil {
		header = map[string]any{"alg": s.alg(), "kid": s.kid, "typ": "JWT"}
	}
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	input := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	digest := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	if s.rsa != nil {
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.rsa, crypto.SHA256, digest[:])
	} else {
		var r, ss *big.Int
		r, ss, err = ecdsa.Sign(rand.Reader, s.ec, digest[:])
		sig = append(r.FillBytes(make([]byte, 32)), ss.FillBytes(make([]byte, 32))...)
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64.EncodeToString(sig)
}

// testJWKS returns a JWKS file with an RSA and an EC key, their signers,
// and a signer whose key is not in it.
func testJWKS(t testing.TB) (path string, rs, es, stranger signer) {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	point, err := ek.PublicKey.Bytes() // 4, x, y
	if err != nil {
		t.Fatal(err)
	}
	jwks := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": b64.EncodeToString(rk.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64.EncodeToString(point[1:33]), "y": b64.EncodeToString(point[33:])},
	}}
	b, _ := json.Marshal(jwks)
	path = filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path, signer{kid: "r1", rsa: rk}, signer{kid: "e1", ec: ek}, signer{kid: "e1", ec: other}
}

func TestJWT(t *testing.T) {
	t.Parallel()
	path, rs, es, stranger := testJWKS(t)
	g, err := New(Config{JWKSFile: path, JWT: JWTClaims{Issuer: "https://idp.example", Audience: "warren"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	claims := func(edit func(map[string]any)) map[string]any {
		c := map[string]any{"sub": "tenant-x", "iss": "https://idp.example", "aud": "warren", "exp": now + 60}
		if edit != nil {
			edit(c)
		}
		return c
	}
	tamper := func(tok string) string {
		p := strings.Split(tok, ".")
		c, _ := json.Marshal(claims(func(c map[string]any) { c["sub"] = "admin" }))
		return p[0] + "." + b64.EncodeToString(c) + "." + p[2]
	}
	unsigned := func(alg string) string {
		h, _ := json.Marshal(map[string]any{"alg": alg})
		c, _ := json.Marshal(claims(nil))
		return b64.EncodeToString(h) + "." + b64.EncodeToString(c) + "."
	}
	tests := []struct {
		name  string
		token string
		want  string // the principal, or words of the error
		ok    bool
	}{
		{"RS256", rs.sign(t, nil, claims(nil)), "tenant-x", true},
		{"ES256", es.sign(t, nil, claims(nil)), "tenant-x", true},
		{"audience among several", es.sign(t, nil, claims(func(c map[string]any) { c["aud"] = []string{"other", "warren"} })), "tenant-x", true},
		{"not before, within leeway", es.sign(t, nil, claims(func(c map[string]any) { c["nbf"] = now + 10 })), "tenant-x", true},
		{"expired", es.sign(t, nil, claims(func(c map[string]any) { c["exp"] = now - 120 })), "JWT expired", false},
		{"no exp", es.sign(t, nil, claims(func(c map[string]any) { delete(c, "exp") })), "without exp", false},
		{"not yet valid", es.sign(t, nil, claims(func(c map[string]any) { c["nbf"] = now + 600 })), "not valid before", false},
		{"no sub", es.sign(t, nil, claims(func(c map[string]any) { delete(c, "sub") })), "without sub", false},
		{"wrong issuer", es.sign(t, nil, claims(func(c map[string]any) { c["iss"] = "https://evil.example" })), "issuer", false},
		{"wrong audience", es.sign(t, nil, claims(func(c map[string]any) { c["aud"] = "other" })), "audience", false},
		{"key not in the JWKS", stranger.sign(t, nil, claims(nil)), "does not verify", false},
		{"unknown kid", es.sign(t, map[string]any{"alg": "ES256", "kid": "nope"}, claims(nil)), "does not verify", false},
		{"claims changed after signing", tamper(rs.sign(t, nil, claims(nil))), "does not verify", false},
		{"RS256 header on an EC signature", es.sign(t, map[string]any{"alg": "RS256", "kid": "e1"}, claims(nil)), "does not verify", false},
		{"alg none", unsigned("none"), `algorithm "none" refused`, false},
		{"alg HS256", unsigned("HS256"), `algorithm "HS256" refused`, false},
		{"garbage with two dots", "a.b.c", "JWT header", false},
		{"binary garbage", "\x00.\xff.\x01", "JWT header", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			md := metadata.Pairs("authorization", "Bearer "+tt.token)
			ctx, err := g.Authorize(metadata.NewIncomingContext(context.Background(), md), "/svc/M")
			if tt.ok {
				if err != nil {
					t.Fatalf("Authorize: %v", err)
				}
				if id, _ := FromContext(ctx); id.Principal != tt.want || id.Via != ViaJWT {
					t.Errorf("identity %+v, want %q by JWT", id, tt.want)
				}
				return
			}
			if status.Code(err) != codes.Unauthenticated || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Authorize: %v, want UNAUTHENTICATED saying %q", err, tt.want)
			}
		})
	}
}

func TestParseJWKSErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, jwks, want string }{
		{"not JSON", `{`, "unexpected end"},
		{"no keys", `{"keys": []}`, `no "keys"`},
		{"symmetric key", `{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}`, `key type "oct"`},
		{"other curve", `{"keys": [{"kty": "EC", "crv": "P-384", "x": "AQ", "y": "AQ"}]}`, `curve "P-384"`},
		{"point off the curve", `{"keys": [{"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}]}`, "not a point of P-256"},
		{"small RSA", `{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}`, "2048 bits"},
		{"alg for another type", `{"keys": [{"kty": "EC", "crv": "P-256", "alg": "RS256", "x": "` + p256x + `", "y": "` + p256y + `"}]}`, `alg "RS256"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseJWKS([]byte(tt.jwks))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseJWKS: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// The base point of P-256, a point on the curve.
var (
	p256x = b64.EncodeToString(elliptic.P256().Params().Gx.Bytes())
	p256y = b64.EncodeToString(elliptic.P256().Params().Gy.Bytes())
)
