package brokertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TLSNode is a RabbitMQ node of a test's own with a TLS listener beside
// its plaintext one, both on 127.0.0.1. The TLS listener asks for a client
// certificate and verifies one that is sent (verify_peer) but accepts a
// client without one (so PLAIN works too), and offers the EXTERNAL
// mechanism, which logs a client in as the common name of its certificate.
type TLSNode struct {
	*Node
	// TLSAddr is the TLS listener's host:port; Node.URL is the plaintext one.
	TLSAddr string
	// CA signed the node's certificate (for 127.0.0.1 and localhost), and
	// the node trusts the client certificates it signs.
	CA *CA
}

// StartTLSNode starts a TLS-enabled node (about 10 s), with a CA and a
// server certificate of its own, and stops it at cleanup.
func StartTLSNode(t testing.TB) *TLSNode {
	t.Helper()
	n := &TLSNode{}
	port := freePort(t)
	n.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	n.Node = startNode(t, func(dir string) string {
		n.CA = NewCA(t, dir, "warren-test-ca")
		cert, key := n.CA.Issue(t, dir, "server", CertSpec{CommonName: "localhost", Hosts: []string{"127.0.0.1", "localhost"}})
		if err := os.WriteFile(filepath.Join(dir, "enabled_plugins"), []byte("[rabbitmq_auth_mechanism_ssl].\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`listeners.ssl.default = %s
ssl_options.cacertfile = %s
ssl_options.certfile = %s
ssl_options.keyfile = %s
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
`, n.TLSAddr, n.CA.File, cert, key)
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", n.TLSAddr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s: TLS listener %s not up: %v", n.Name, n.TLSAddr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return n
}

// AddUser creates user name with full permissions on vhost /. An empty
// password makes a user who cannot log in with a password: one for
// EXTERNAL, whose client certificate's common name is name.
func (n *Node) AddUser(t testing.TB, name, password string) {
	t.Helper()
	// add_user wants a password (an empty one it reads from stdin): give
	// it one nobody knows and clear it.
	pw := password
	if pw == "" {
		pw = "unused-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	n.Ctl(t, "add_user", name, pw)
	if password == "" {
		n.Ctl(t, "clear_password", name)
	}
	n.Ctl(t, "set_permissions", "-p", "/", name, ".*", ".*", ".*")
}

// Connections lists the node's client connections as rabbitmqctl
// list_connections prints the info items asked for: one line each, the
// items separated by tabs.
func (n *Node) Connections(t testing.TB, items ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"-n", n.Name, "-q", "list_connections", "--no-table-headers"}, items...)
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("rabbitmqctl %v: %v: %s", args, err, out)
	}
	var lines []string
	for l := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}
