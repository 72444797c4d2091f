package auth

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
)

// Tokens maps bearer tokens to principals. The file holds no token, only
// its SHA-256: one line per token, the hash in hex, blanks, the principal
// (the rest of the line). Blank lines and lines starting with # are
// ignored:
//
//	# printf %s "$TOKEN" | sha256sum
//	9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 tenant-x
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	hash      [sha256.Size]byte
	principal string
}

// ParseTokens reads a tokens file's contents.
func ParseTokens(data []byte) (*Tokens, error) {
	t := &Tokens{}
	seen := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		h, principal := line, ""
		if i := strings.IndexAny(line, " \t"); i >= 0 {
			h, principal = line[:i], strings.TrimSpace(line[i:])
		}
		var e tokenEntry
		if len(h) != hex.EncodedLen(sha256.Size) {
			return nil, fmt.Errorf("auth: tokens line %d: want a SHA-256 in hex (64 characters) and a principal, got %d characters before the principal", n, len(h))
		}
		if _, err := hex.Decode(e.hash[:], []byte(h)); err != nil {
			return nil, fmt.Errorf("auth: tokens line %d: the hash is not hex: %v", n, err)
		}
		if principal == "" {
			return nil, fmt.Errorf("auth: tokens line %d: no principal after the hash", n)
		}
		if prev, dup := seen[e.hash]; dup {
			return nil, fmt.Errorf("auth: tokens line %d: the same hash as line %d", n, prev)
		}
		seen[e.hash] = n
		e.principal = principal
		t.entries = append(t.entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth: read tokens: %w", err)
	}
	return t, nil
}

// HashToken is the hex SHA-256 of token, as a tokens file holds it.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Lookup returns the principal of token, if the file names it. It
// compares the token's hash with every entry in constant time, and never
// stops early, so its time says nothing about which entry came close.
func (t *Tokens) Lookup(token string) (string, bool) {
	if t == nil || token == "" {
		return "", false
	}
	h := sha256.Sum256([]byte(token))
	found := -1
	for i := range t.entries {
		if subtle.ConstantTimeCompare(h[:], t.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return t.entries[found].principal, true
}

// Len is the count of tokens.
func (t *Tokens) Len() int { return len(t.entries) }
