// Package auth authenticates and authorizes the gateway's gRPC calls.
//
// Authentication: a call's principal is the principal a tokens file maps
// its bearer token to (the authorization header, "Bearer <token>"; the file
// holds SHA-256 hashes, never tokens, and a lookup compares every entry in
// constant time) or, when it is a JWT and a JWKS is configured, the JWT's
// verified subject; else the name in its verified client certificate (first
// URI SAN, else first DNS SAN, else common name; mutual TLS is the
// gateway's, gateway.NewTLS). A token that is malformed or unknown is
// UNAUTHENTICATED even when a certificate came with it; a call with
// neither credential is anonymous.
//
// Authorization: a Policy in grpc-go's authorization policy format
// (google.golang.org/grpc/authz), which warren evaluates itself, because
// grpc's engine takes principals from TLS certificates only and token
// principals must count the same. Denied anonymous calls are
// UNAUTHENTICATED, denied principals PERMISSION_DENIED; a rule with no
// principals leaves a method open (health, reflection). The policy's
// "scopes" restrict routing and binding keys per exchange: the Guard puts
// a core.KeyGuard in each call's context, and the core checks every
// publishing's routing key and every binding key with it
// (core.CheckScope) before it declares, binds or publishes anything.
//
// Concurrency: a Guard's interceptors are safe for concurrent use. Its Run
// method, called once (gateway.Server.Serve does), polls the policy and
// tokens files and swaps a new version in atomically; calls that started
// before keep the decision they got (an open stream is not cut), later
// calls and later key checks see the new one. A file that fails to parse
// is logged and the last good version stays.
package auth
