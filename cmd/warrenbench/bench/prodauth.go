package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"

	"google.golang.org/grpc"

	"github.com/warrenrpc/warren/auth"
	"github.com/warrenrpc/warren/gateway"
)

// benchToken is the bench's bearer token; the gateway knows its hash.
const benchToken = "warren-bench-token"

// benchPolicy lets the bench's principal call what the bench calls, as a
// production policy would name its callers' methods.
const benchPolicy = `{
  "name": "warren-bench",
  "allow_rules": [{
    "name": "bench",
    "source": {"principals": ["bench"]},
    "request": {"paths": ["/warren.v1.FibonacciService/*", "/warren.v1.TaskService/*"]}
  }]
}`

// withTokenAuth turns on authentication by bearer token and an
// authorization policy in g (files in a directory of their own), and
// returns the dial options that send the token. The returned cleanup
// removes the files (the gateway runs the Guard's reloads while it
// serves).
func withTokenAuth(g gateway.Config, o []grpc.DialOption) (gateway.Config, []grpc.DialOption, func(), error) {
	dir, err := os.MkdirTemp("", "warrenbench-auth-")
	if err != nil {
		return g, o, nil, err
	}
	sum := sha256.Sum256([]byte(benchToken))
	tokens, policy := filepath.Join(dir, "tokens"), filepath.Join(dir, "policy.json")
	if err := os.WriteFile(tokens, []byte(hex.EncodeToString(sum[:])+" bench\n"), 0o600); err != nil {
		os.RemoveAll(dir)
		return g, o, nil, err
	}
	if err := os.WriteFile(policy, []byte(benchPolicy), 0o600); err != nil {
		os.RemoveAll(dir)
		return g, o, nil, err
	}
	guard, err := auth.New(auth.Config{TokensFile: tokens, PolicyFile: policy, Logger: quiet})
	if err != nil {
		os.RemoveAll(dir)
		return g, o, nil, err
	}
	g.Auth = guard
	creds := bearerToken{"authorization": "Bearer " + benchToken}
	return g, append(o, grpc.WithPerRPCCredentials(creds)), func() { os.RemoveAll(dir) }, nil
}

// bearerToken is the load generator's per-call credentials: one map,
// made once and only read by gRPC, as a client with a long-lived token
// would hold it. (A new map and string a call were load-generator work
// the benchmark counted against the gateway.)
type bearerToken map[string]string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return b, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }
