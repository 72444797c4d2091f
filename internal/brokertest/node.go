package brokertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Node is a RabbitMQ node of a test's own, for tests that restart a broker
// or raise its alarms: never the shared broker other packages use.
type Node struct {
	Name string // the Erlang node name, name@localhost
	URL  string // its AMQP URL
	dir  string
}

var nodeSeq atomic.Uint64

// StartNode starts a fresh RabbitMQ node (about 10 s) and stops it at
// cleanup. Without rabbitmq-server it fails under CI and skips otherwise.
func StartNode(t testing.TB) *Node {
	t.Helper()
	return startNode(t, nil)
}

// startNode starts a node as StartNode does; setup, when not nil, writes
// what else the node needs into its directory (certificates, the
// enabled_plugins file) before the directory goes to user rabbitmq, and
// returns lines for its rabbitmq.conf.
func startNode(t testing.TB, setup func(dir string) string) *Node {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("rabbitmq-server is not installed under CI: %v (make test installs it)", err)
		}
		t.Skipf("SKIPPING test that needs a broker node of its own: %v", err)
	}
	dir, err := os.MkdirTemp("", "warren-node-")
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port, dist := freePort(t), freePort(t)
	n := &Node{
		Name: fmt.Sprintf("warren%d-%d@localhost", os.Getpid(), nodeSeq.Add(1)),
		URL:  fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", port),
		dir:  dir,
	}
	// The machine's rabbitmq.conf may pin the listener to 5672; a config
	// file of the node's own overrides it.
	conf := filepath.Join(dir, "rabbitmq.conf")
	lines := fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\n", port)
	if setup != nil {
		lines += setup(dir)
	}
	if err := os.WriteFile(conf, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "-R", "rabbitmq:rabbitmq", dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s to rabbitmq: %v: %s", dir, err, out)
	}
	cmd := exec.Command("rabbitmq-server")
	cmd.Env = append(os.Environ(),
		"RABBITMQ_CONFIG_FILE="+conf,
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_FEATURE_FLAGS_FILE="+filepath.Join(dir, "feature_flags"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "pid"),
	)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rabbitmq-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = n.ctl("stop")
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = os.RemoveAll(dir)
	})
	if err := n.WaitUp(60 * time.Second); err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	return n
}

// Ctl runs rabbitmqctl against the node.
func (n *Node) Ctl(t testing.TB, args ...string) {
	t.Helper()
	if err := n.ctl(args...); err != nil {
		t.Fatal(err)
	}
}

func (n *Node) ctl(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("rabbitmqctl -n %s %v: %v: %s", n.Name, args, err, out)
	}
	return nil
}

// WaitUp waits until the node's AMQP listener is back (after start_app).
func (n *Node) WaitUp(d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	u := n.URL[len("amqp://guest:guest@") : len(n.URL)-1]
	for ctx.Err() == nil {
		if c, err := net.DialTimeout("tcp", u, time.Second); err == nil {
			_ = c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("AMQP port %s not up within %v", u, d)
}

func freePort(t testing.TB) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}
