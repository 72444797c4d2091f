package brokertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is a RabbitMQ cluster of a test's own: nodes on this machine,
// each with its own ports, config file and directories, joined with
// join_cluster. Tests kill and restart its nodes; it is never the shared
// broker.
type Cluster struct {
	Nodes []*ClusterNode
}

// ClusterNode is one node of a Cluster. Kill9 and Start may be called from
// one goroutine at a time.
type ClusterNode struct {
	Node
	port, dist int

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
}

// StartCluster starts n fresh RabbitMQ nodes in parallel (about 10-20 s),
// joins the others to the first one, and stops them and removes their
// directories at cleanup, whatever the test's outcome. Without
// rabbitmq-server it fails under CI and skips otherwise; a node that does
// not start fails the test.
//
// Every node runs as user rabbitmq with that user's home, so all share
// its Erlang cookie.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	if _, err := exec.LookPath("rabbitmq-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("rabbitmq-server is not installed under CI: %v (make test installs it)", err)
		}
		t.Skipf("SKIPPING test that needs a RabbitMQ cluster of its own: %v", err)
	}
	run := fmt.Sprintf("warren%d-c%d", os.Getpid(), nodeSeq.Add(1))
	c := &Cluster{}
	for i := range n {
		dir, err := os.MkdirTemp("", "warren-cluster-")
		if err != nil {
			t.Fatal(err)
		}
		node := &ClusterNode{
			Node: Node{Name: fmt.Sprintf("%s-%d@localhost", run, i+1), dir: dir},
			port: freePort(t), dist: freePort(t),
		}
		node.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", node.port)
		c.Nodes = append(c.Nodes, node)
		t.Cleanup(func() { node.stop() })
		if err := node.prepare(); err != nil {
			t.Fatal(err)
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, node := range c.Nodes {
		wg.Go(func() { errs[i] = node.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	// join_cluster one node at a time: concurrent joins race in mnesia.
	for _, node := range c.Nodes[1:] {
		for _, args := range [][]string{{"stop_app"}, {"join_cluster", c.Nodes[0].Name}, {"start_app"}} {
			if err := node.ctl(args...); err != nil {
				t.Fatalf("join %s to %s: %v", node.Name, c.Nodes[0].Name, err)
			}
		}
		if err := node.WaitUp(60 * time.Second); err != nil {
			t.Fatalf("node %s after join_cluster: %v", node.Name, err)
		}
	}
	return c
}

// URLs are the AMQP URLs of the nodes, in order.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		urls[i] = n.URL
	}
	return urls
}

// Node returns the node named name (name@localhost), or nil.
func (c *Cluster) Node(name string) *ClusterNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// NodeByURL returns the node whose AMQP URL is url, or nil.
func (c *Cluster) NodeByURL(url string) *ClusterNode {
	for _, n := range c.Nodes {
		if n.URL == url {
			return n
		}
	}
	return nil
}

// QuorumStatus returns the node that leads the quorum queue queue (in
// vhost /) and how many of its members are online, asking a running node
// other than except (nil: any).
func (c *Cluster) QuorumStatus(t testing.TB, queue string, except *ClusterNode) (leader *ClusterNode, online int) {
	t.Helper()
	var errs []error
	for _, n := range c.Nodes {
		if n == except || !n.Running() {
			continue
		}
		out, err := n.ctlOutput("list_queues", "--formatter", "json", "name", "leader", "online")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var queues []struct {
			Name   string          `json:"name"`
			Leader string          `json:"leader"`
			Online json.RawMessage `json:"online"` // "" for a classic queue
		}
		if err := json.Unmarshal([]byte(out), &queues); err != nil {
			errs = append(errs, fmt.Errorf("node %s: list_queues: %w: %s", n.Name, err, out))
			continue
		}
		for _, q := range queues {
			if q.Name != queue {
				continue
			}
			var online []string
			_ = json.Unmarshal(q.Online, &online)
			if l := c.Node(q.Leader); l != nil {
				return l, len(online)
			}
			t.Fatalf("queue %s: leader %q is no node of the cluster", queue, q.Leader)
		}
		errs = append(errs, fmt.Errorf("node %s lists no queue %s", n.Name, queue))
	}
	t.Fatalf("no leader of queue %s: %v", queue, errors.Join(errs...))
	return nil, 0
}

// Running reports whether the node's process is running (it may still be
// booting).
func (n *ClusterNode) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// Kill9 kills the node's Erlang VM with SIGKILL, as a crash or an OOM kill
// would, and waits for it to be gone.
func (n *ClusterNode) Kill9(t testing.TB) {
	t.Helper()
	pid, err := n.pid()
	if err != nil {
		t.Fatalf("node %s: %v", n.Name, err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d (node %s): %v", pid, n.Name, err)
	}
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	select {
	case <-exited: // rabbitmq-server ends with its VM
	case <-time.After(30 * time.Second):
		t.Fatalf("node %s: rabbitmq-server still running 30s after kill -9 %d", n.Name, pid)
	}
}

// Start starts the node again after Kill9, with the directories it had,
// so that it rejoins its cluster, and waits until its AMQP port is up.
func (n *ClusterNode) Start(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
}

// pid is the node's Erlang VM's process id, from its pid file.
func (n *ClusterNode) pid() (int, error) {
	b, err := os.ReadFile(filepath.Join(n.dir, "pid"))
	if err != nil {
		return 0, fmt.Errorf("read pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("pid file: %w", err)
	}
	return pid, nil
}

// prepare makes the node's directories and config file, owned by rabbitmq.
func (n *ClusterNode) prepare() error {
	for _, sub := range []string{"mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(n.dir, sub), 0o755); err != nil {
			return err
		}
	}
	conf := fmt.Sprintf("listeners.tcp.local = 127.0.0.1:%d\n", n.port)
	if err := os.WriteFile(filepath.Join(n.dir, "rabbitmq.conf"), []byte(conf), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("chown", "-R", "rabbitmq:rabbitmq", n.dir).CombinedOutput(); err != nil {
		return fmt.Errorf("chown %s to rabbitmq: %v: %s", n.dir, err, out)
	}
	return nil
}

// start runs rabbitmq-server for the node and waits for its AMQP port.
func (n *ClusterNode) start() error {
	n.mu.Lock()
	if n.cmd != nil {
		select {
		case <-n.exited:
		default:
			n.mu.Unlock()
			return fmt.Errorf("node %s is running", n.Name)
		}
	}
	cmd := exec.Command("rabbitmq-server")
	cmd.Env = append(os.Environ(),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(n.dir, "rabbitmq.conf"),
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(n.dist),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(n.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(n.dir, "log"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(n.dir, "enabled_plugins"),
		"RABBITMQ_FEATURE_FLAGS_FILE="+filepath.Join(n.dir, "feature_flags"),
		"RABBITMQ_PID_FILE="+filepath.Join(n.dir, "pid"),
	)
	if err := cmd.Start(); err != nil {
		n.mu.Unlock()
		return fmt.Errorf("start rabbitmq-server for %s: %w", n.Name, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	n.cmd, n.exited = cmd, exited
	n.mu.Unlock()
	if err := n.WaitUp(90 * time.Second); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	return nil
}

// stop ends the node (rabbitmqctl stop, then SIGKILL to its VM if it is
// still there after 30 s) and removes its directories.
func (n *ClusterNode) stop() {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	if exited != nil {
		select {
		case <-exited:
		default:
			_ = n.ctl("stop")
			select {
			case <-exited:
			case <-time.After(30 * time.Second):
				if pid, err := n.pid(); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				select {
				case <-exited:
				case <-time.After(10 * time.Second):
				}
			}
		}
	}
	_ = os.RemoveAll(n.dir)
}

// ctlOutput runs rabbitmqctl -q against the node and returns its output.
func (n *ClusterNode) ctlOutput(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", append([]string{"-q", "-n", n.Name}, args...)...).Output()
	if err != nil {
		return "", fmt.Errorf("rabbitmqctl -n %s %v: %w", n.Name, args, err)
	}
	return string(out), nil
}
