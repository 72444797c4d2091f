package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/warrenrpc/warren/core"
)

// Policy is an authorization policy in grpc-go's format (package
// google.golang.org/grpc/authz, gRFC A43), with warren's routing-key
// scopes as one more key:
//
//	{
//	  "name": "warren",
//	  "deny_rules":  [{"name": "...", "source": {"principals": [...]}, "request": {"paths": [...], "headers": [...]}}],
//	  "allow_rules": [...],
//	  "scopes": [{"name": "tenant-x", "principals": ["tenant-x"], "exchange": "topic_logs",
//	              "emit": ["tenant.x.#"], "subscribe": ["tenant.x.#"]}]
//	}
//
// A call is denied when a deny rule matches it, else allowed when an
// allow rule matches it, else denied. A rule matches when its source and
// its request match: principals (none: any caller, even an anonymous
// one), paths (the full method, "/warren.v1.LogService/EmitLog"; none:
// every method) and headers (every one listed must have one of its
// values). Every string is exact, "prefix*", "*suffix", or "*" for any
// non-empty value, as grpc reads it; "*" as a principal is any
// authenticated caller.
//
// Warren evaluates the policy itself rather than with grpc's engine, whose
// principals come only from a TLS peer certificate: here a principal is
// whoever the Guard authenticated, by certificate or by bearer token. The
// rules are read as grpc reads them, unknown keys are errors, and
// audit_logging_options is accepted and ignored.
//
// Scopes restrict routing and binding keys per exchange. An exchange no
// scope names is unrestricted. On an exchange some scope names, a caller
// may publish with a routing key only when a scope for it (its principals
// match the caller) has an emit pattern that matches the key
// (core.MatchKey, topic semantics), and may bind with a binding key only
// when every routing key the binding can match is matched by the scope's
// subscribe patterns: "tenant.x.*" is within "tenant.x.#", "#" is not. An
// empty binding key counts as "#": on a fanout exchange it receives
// everything, and the core does not know an exchange's kind. A binding on
// a direct exchange is read as a topic pattern too, which can only refuse
// more, never less.
type Policy struct {
	name   string
	deny   []rule
	allow  []rule
	scopes map[string][]scope // by exchange
}

type rule struct {
	name       string
	principals []matcher // none: any caller
	paths      []matcher // none: any method
	headers    []headerRule
}

type headerRule struct {
	key    string
	values []matcher
}

type scope struct {
	name       string
	principals []matcher
	emit       []string
	subscribe  []string
}

type policyFile struct {
	Name                string          `json:"name"`
	DenyRules           []ruleFile      `json:"deny_rules"`
	AllowRules          []ruleFile      `json:"allow_rules"`
	AuditLoggingOptions json.RawMessage `json:"audit_logging_options"`
	Scopes              []scopeFile     `json:"scopes"`
}

type ruleFile struct {
	Name   string `json:"name"`
	Source struct {
		Principals []string `json:"principals"`
	} `json:"source"`
	Request struct {
		Paths   []string `json:"paths"`
		Headers []struct {
			Key    string   `json:"key"`
			Values []string `json:"values"`
		} `json:"headers"`
	} `json:"request"`
}

type scopeFile struct {
	Name       string   `json:"name"`
	Principals []string `json:"principals"`
	Exchange   *string  `json:"exchange"`
	Emit       []string `json:"emit"`
	Subscribe  []string `json:"subscribe"`
}

// The headers grpc's policy refuses to match on, besides pseudo-headers
// and grpc-*.
var unsupportedHeaders = map[string]bool{
	"host": true, "connection": true, "keep-alive": true, "proxy-authenticate": true,
	"proxy-authorization": true, "te": true, "trailer": true, "transfer-encoding": true, "upgrade": true,
}

// ParsePolicy reads a policy file's contents.
func ParsePolicy(data []byte) (*Policy, error) {
	var f policyFile
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&f); err != nil {
		return nil, fmt.Errorf("auth: policy: %w", err)
	}
	if d.More() {
		return nil, errors.New("auth: policy: more than one JSON value")
	}
	if f.Name == "" {
		return nil, errors.New(`auth: policy: "name" is not present`)
	}
	if len(f.AllowRules) == 0 {
		return nil, errors.New(`auth: policy: "allow_rules" is not present`)
	}
	p := &Policy{name: f.Name, scopes: map[string][]scope{}}
	var err error
	if p.deny, err = parseRules(f.DenyRules); err != nil {
		return nil, fmt.Errorf(`auth: policy: "deny_rules" %w`, err)
	}
	if p.allow, err = parseRules(f.AllowRules); err != nil {
		return nil, fmt.Errorf(`auth: policy: "allow_rules" %w`, err)
	}
	for i, sf := range f.Scopes {
		s, ex, err := parseScope(sf)
		if err != nil {
			return nil, fmt.Errorf(`auth: policy: "scopes" %d: %w`, i, err)
		}
		p.scopes[ex] = append(p.scopes[ex], s)
	}
	return p, nil
}

func parseRules(fs []ruleFile) ([]rule, error) {
	rules := make([]rule, 0, len(fs))
	for i, f := range fs {
		if f.Name == "" {
			return nil, fmt.Errorf(`%d: "name" is not present`, i)
		}
		r := rule{name: f.Name, principals: matchers(f.Source.Principals), paths: matchers(f.Request.Paths)}
		for j, h := range f.Request.Headers {
			if h.Key == "" {
				return nil, fmt.Errorf(`%d: "headers" %d: "key" is not present`, i, j)
			}
			key := strings.ToLower(h.Key)
			if key[0] == ':' || strings.HasPrefix(key, "grpc-") || unsupportedHeaders[key] {
				return nil, fmt.Errorf(`%d: "headers" %d: unsupported "key" %s`, i, j, key)
			}
			if len(h.Values) == 0 {
				return nil, fmt.Errorf(`%d: "headers" %d: "values" is not present`, i, j)
			}
			r.headers = append(r.headers, headerRule{key: key, values: matchers(h.Values)})
		}
		rules = append(rules, r)
	}
	return rules, nil
}

func parseScope(f scopeFile) (scope, string, error) {
	if f.Exchange == nil {
		return scope{}, "", errors.New(`"exchange" is not present ("" is the default exchange)`)
	}
	if len(f.Principals) == 0 {
		return scope{}, "", errors.New(`"principals" is not present`)
	}
	for _, list := range [][]string{f.Emit, f.Subscribe} {
		for _, p := range list {
			if err := core.CheckBindingKey("topic", p); err != nil {
				return scope{}, "", fmt.Errorf("pattern %q: %w", p, err)
			}
		}
	}
	return scope{name: f.Name, principals: matchers(f.Principals), emit: f.Emit, subscribe: f.Subscribe}, *f.Exchange, nil
}

// Name is the policy's name.
func (p *Policy) Name() string { return p.name }

// Decision is the policy's answer for one call.
type Decision struct {
	Allowed bool
	// Rule is the name of the rule that decided: a deny rule that
	// matched, or an allow rule that matched; "" when no rule matched
	// (denied).
	Rule string
}

// Authorize decides whether id may call method (its full name,
// "/package.Service/Method") with the request headers md.
func (p *Policy) Authorize(id Identity, method string, md metadata.MD) Decision {
	for _, r := range p.deny {
		if r.matches(id, method, md) {
			return Decision{Rule: r.name}
		}
	}
	for _, r := range p.allow {
		if r.matches(id, method, md) {
			return Decision{Allowed: true, Rule: r.name}
		}
	}
	return Decision{}
}

// readsHeaders reports whether a rule of p matches on request headers:
// Authorize needs the call's metadata only then.
func (p *Policy) readsHeaders() bool {
	for _, rs := range [][]rule{p.deny, p.allow} {
		for _, r := range rs {
			if len(r.headers) > 0 {
				return true
			}
		}
	}
	return false
}

func (r *rule) matches(id Identity, method string, md metadata.MD) bool {
	if len(r.principals) > 0 && (id.Principal == "" || !anyMatch(r.principals, id.Principal)) {
		return false
	}
	if len(r.paths) > 0 && !anyMatch(r.paths, method) {
		return false
	}
	for _, h := range r.headers {
		vs := md.Get(h.key)
		if len(vs) == 0 || !anyMatch(h.values, strings.Join(vs, ",")) {
			return false
		}
	}
	return true
}

// AllowKey decides whether principal may use key for op on exchange
// (see Policy for the rules): nil, or why not.
func (p *Policy) AllowKey(principal string, op core.KeyOp, exchange, key string) error {
	scopes, scoped := p.scopes[exchange]
	if !scoped {
		return nil
	}
	var patterns []string
	for _, s := range scopes {
		if principal != "" && anyMatch(s.principals, principal) {
			if op == core.KeyEmit {
				patterns = append(patterns, s.emit...)
			} else {
				patterns = append(patterns, s.subscribe...)
			}
		}
	}
	who := fmt.Sprintf("principal %q", principal)
	if principal == "" {
		who = "an anonymous caller"
	}
	if len(patterns) == 0 {
		return fmt.Errorf("%s has no %s scope on this exchange", who, op)
	}
	if op == core.KeyEmit {
		if !emitAllowed(key, patterns) {
			return fmt.Errorf("outside %s's emit scope %q", who, patterns)
		}
		return nil
	}
	binding := key
	if binding == "" {
		binding = "#"
	}
	ok, err := within(binding, patterns)
	switch {
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("the binding can match keys outside %s's subscribe scope %q", who, patterns)
	}
	return nil
}
