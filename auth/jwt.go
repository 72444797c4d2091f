package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// JWKS is a JSON Web Key Set (RFC 7517) that verifies JWTs (RFC 7519)
// signed with RS256 or ES256: a bearer token that is a JWT signed by one
// of its keys, not expired, with a subject, is that subject's (its "sub"
// claim is the principal). Other algorithms, "none" and HMAC among them,
// are refused.
type JWKS struct {
	keys []jwk
}

type jwk struct {
	kid string
	alg string // RS256 or ES256
	pub crypto.PublicKey
}

// JWTLeeway is the clock skew allowed when checking exp and nbf.
const JWTLeeway = 30 * time.Second

// ParseJWKS reads a JWKS file's contents: RSA keys and EC keys on P-256.
// A key of another type or curve is an error, so that no key the operator
// meant to trust is silently left out.
func ParseJWKS(data []byte) (*JWKS, error) {
	var f struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Use string `json:"use"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("auth: JWKS: %w", err)
	}
	if len(f.Keys) == 0 {
		return nil, errors.New(`auth: JWKS: no "keys"`)
	}
	s := &JWKS{}
	for i, k := range f.Keys {
		if k.Use != "" && k.Use != "sig" {
			continue // an encryption key verifies nothing
		}
		var key jwk
		key.kid = k.Kid
		switch k.Kty {
		case "RSA":
			n, err1 := b64Int(k.N)
			e, err2 := b64Int(k.E)
			if err := errors.Join(err1, err2); err != nil || !e.IsInt64() || e.Int64() < 3 || n.BitLen() < 2048 {
				return nil, fmt.Errorf("auth: JWKS key %d: want an RSA key of 2048 bits or more with n and e: %v", i, err)
			}
			key.alg, key.pub = "RS256", &rsa.PublicKey{N: n, E: int(e.Int64())}
		case "EC":
			if k.Crv != "P-256" {
				return nil, fmt.Errorf("auth: JWKS key %d: curve %q, want P-256", i, k.Crv)
			}
			x, err1 := b64Int(k.X)
			y, err2 := b64Int(k.Y)
			if err := errors.Join(err1, err2); err != nil {
				return nil, fmt.Errorf("auth: JWKS key %d: %w", i, err)
			}
			if x.BitLen() > 256 || y.BitLen() > 256 {
				return nil, fmt.Errorf("auth: JWKS key %d: not a point of P-256", i)
			}
			point := append([]byte{4}, x.FillBytes(make([]byte, 32))...)
			point = append(point, y.FillBytes(make([]byte, 32))...)
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), point) // checks the point is on the curve
			if err != nil {
				return nil, fmt.Errorf("auth: JWKS key %d: not a point of P-256", i)
			}
			key.alg, key.pub = "ES256", pub
		default:
			return nil, fmt.Errorf("auth: JWKS key %d: key type %q, want RSA or EC", i, k.Kty)
		}
		if k.Alg != "" && k.Alg != key.alg {
			return nil, fmt.Errorf("auth: JWKS key %d: alg %q, want %s for a %s key", i, k.Alg, key.alg, k.Kty)
		}
		s.keys = append(s.keys, key)
	}
	return s, nil
}

func b64Int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) == 0 {
		return nil, fmt.Errorf("bad base64url integer %q", s)
	}
	return new(big.Int).SetBytes(b), nil
}

// JWTClaims are the checks of a JWT's claims besides exp and nbf.
type JWTClaims struct {
	// Issuer, when set, must equal the token's "iss".
	Issuer string
	// Audience, when set, must be the token's "aud" or one of them.
	Audience string
}

// looksLikeJWT reports whether a bearer token has a JWT's three parts.
func looksLikeJWT(token string) bool { return strings.Count(token, ".") == 2 }

// Verify checks token's signature, exp, nbf and the claims want, and
// returns its subject.
func (s *JWKS) Verify(token string, want JWTClaims, now time.Time) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT (want three dot-separated parts)")
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	if err := decodePart(parts[0], &header); err != nil {
		return "", fmt.Errorf("JWT header: %w", err)
	}
	if header.Alg != "RS256" && header.Alg != "ES256" {
		return "", fmt.Errorf("JWT algorithm %q refused (want RS256 or ES256)", header.Alg)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return "", errors.New("JWT signature: bad base64url")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	verified := false
	for _, k := range s.keys {
		if k.alg != header.Alg || (header.Kid != "" && k.kid != header.Kid) {
			continue
		}
		switch pub := k.pub.(type) {
		case *rsa.PublicKey:
			verified = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
		case *ecdsa.PublicKey:
			if len(sig) == 64 {
				r, ss := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
				verified = ecdsa.Verify(pub, digest[:], r, ss)
			}
		}
		if verified {
			break
		}
	}
	if !verified {
		return "", fmt.Errorf("JWT signature does not verify with any %s key of the JWKS (kid %q)", header.Alg, header.Kid)
	}
	var c struct {
		Sub string          `json:"sub"`
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
		Exp *float64        `json:"exp"`
		Nbf *float64        `json:"nbf"`
	}
	if err := decodePart(parts[1], &c); err != nil {
		return "", fmt.Errorf("JWT claims: %w", err)
	}
	switch {
	case c.Exp == nil:
		return "", errors.New("JWT without exp refused")
	case now.After(time.Unix(int64(*c.Exp), 0).Add(JWTLeeway)):
		return "", fmt.Errorf("JWT expired at %s", time.Unix(int64(*c.Exp), 0).UTC().Format(time.RFC3339))
	case c.Nbf != nil && now.Add(JWTLeeway).Before(time.Unix(int64(*c.Nbf), 0)):
		return "", fmt.Errorf("JWT not valid before %s", time.Unix(int64(*c.Nbf), 0).UTC().Format(time.RFC3339))
	case c.Sub == "":
		return "", errors.New("JWT without sub (the principal)")
	case want.Issuer != "" && c.Iss != want.Issuer:
		return "", fmt.Errorf("JWT issuer %q, want %q", c.Iss, want.Issuer)
	}
	if want.Audience != "" {
		var one string
		var many []string
		if json.Unmarshal(c.Aud, &one) == nil {
			many = []string{one}
		} else if json.Unmarshal(c.Aud, &many) != nil {
			many = nil
		}
		found := false
		for _, a := range many {
			found = found || a == want.Audience
		}
		if !found {
			return "", fmt.Errorf("JWT audience %s, want %q", string(c.Aud), want.Audience)
		}
	}
	return c.Sub, nil
}

func decodePart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return errors.New("bad base64url")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("bad JSON: %w", err)
	}
	return nil
}
