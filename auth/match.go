package auth

import "strings"

// A matcher is one string of a policy as grpc's authorization policy reads
// it: "*" matches any non-empty string, "prefix*" a prefix, "*suffix" a
// suffix, and anything else exactly.
type matcher struct {
	kind  byte // '=' exact, '^' prefix, '$' suffix, '*' any non-empty
	value string
}

func newMatcher(s string) matcher {
	switch {
	case s == "*":
		return matcher{kind: '*'}
	case strings.HasSuffix(s, "*"):
		return matcher{kind: '^', value: strings.TrimSuffix(s, "*")}
	case strings.HasPrefix(s, "*"):
		return matcher{kind: '$', value: strings.TrimPrefix(s, "*")}
	}
	return matcher{kind: '=', value: s}
}

func (m matcher) match(s string) bool {
	switch m.kind {
	case '*':
		return s != ""
	case '^':
		return strings.HasPrefix(s, m.value)
	case '$':
		return strings.HasSuffix(s, m.value)
	}
	return s == m.value
}

// anyMatch reports whether one of ms matches s.
func anyMatch(ms []matcher, s string) bool {
	for _, m := range ms {
		if m.match(s) {
			return true
		}
	}
	return false
}

func matchers(ss []string) []matcher {
	ms := make([]matcher, len(ss))
	for i, s := range ss {
		ms[i] = newMatcher(s)
	}
	return ms
}
