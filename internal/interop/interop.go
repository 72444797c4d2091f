// Package interop runs the RabbitMQ tutorials' programs as warren's peers
// in tests: written as the official tutorials write them, in Python
// (pika) and in JavaScript (Node.js and amqplib), each a script in the
// testdata of the package under test, run as a subprocess on the test's
// own queue.
//
// A script reads the broker from AMQP_URL and the way it declares its
// queue from QUEUE_TYPE: "quorum" declares a durable quorum queue, as
// today's tutorials do; "classic" declares the queue as the older
// tutorials (and the seed's scripts) did, with no x-queue-type. Matrix
// runs a test for every language, both queue types and both start
// orders.
//
// When an interpreter or its library is missing, the test is skipped with
// a loud message, except when CI is set: then it fails, because a skipped
// interop test proves nothing. make test installs them
// (scripts/ensure-pika.sh, scripts/ensure-amqplib.sh).
package interop

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/pytest"
)

// Lang is a language of the tutorials with its client library.
type Lang struct {
	// Name names the language in test names: "pika" or "node".
	Name string
	ext  string // of its scripts: ".py", ".js"
	// command returns the interpreter and the environment it needs.
	command func(t testing.TB) (path string, env []string)
	// check is a program that fails when the library is missing.
	check []string
	hint  string
}

// The languages.
var (
	// Pika is Python with pika, as Debian packages it (1.2: no
	// pika.DeliveryMode, so scripts pass delivery_mode=2).
	Pika = Lang{
		Name: "pika", ext: ".py",
		command: func(testing.TB) (string, []string) { return pytest.Python, []string{"PYTHONUNBUFFERED=1"} },
		check:   []string{"-c", "import pika"},
		hint:    "apt-get install python3-pika, or run scripts/ensure-pika.sh",
	}
	// Node is Node.js with amqplib, installed into .tmp/node as
	// internal/interop/package-lock.json pins it.
	Node = Lang{
		Name: "node", ext: ".js",
		command: func(t testing.TB) (string, []string) {
			path, err := exec.LookPath("node")
			if err != nil {
				path = "node" // the check fails and says so
			}
			return path, []string{"NODE_PATH=" + filepath.Join(repoRoot(t), ".tmp", "node", "node_modules")}
		},
		check: []string{"-e", `require("amqplib")`},
		hint:  "run scripts/ensure-amqplib.sh",
	}
	// Langs are the languages the interop tests run.
	Langs = []Lang{Pika, Node}
)

// Require stops the test when the language's interpreter or library is
// missing: t.Fatal under CI, t.Skip otherwise.
func (l Lang) Require(t testing.TB) {
	t.Helper()
	path, env := l.command(t)
	checked.Lock()
	res, ok := checked.m[l.Name]
	if !ok {
		cmd := exec.Command(path, l.check...)
		cmd.Env = append(os.Environ(), env...)
		res.out, res.err = cmd.CombinedOutput()
		checked.m[l.Name] = res
	}
	checked.Unlock()
	if res.err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s cannot run the %s tutorials under CI: %v\n%s(%s; make test does)", path, l.Name, res.err, res.out, l.hint)
		}
		t.Skipf("SKIPPING interop test: %s cannot run the %s tutorials: %v\n%s(%s)", path, l.Name, res.err, res.out, l.hint)
	}
}

// checked holds each language's check, run once per test binary.
var checked = struct {
	sync.Mutex
	m map[string]checkResult
}{m: map[string]checkResult{}}

type checkResult struct {
	out []byte
	err error
}

// Command returns a command running the tutorial program (testdata/
// program + the language's extension) with args, declaring its queue as
// typ says (QueueClassic: as the older tutorials; anything else: a
// durable quorum queue, as today's), on the test broker.
func (l Lang) Command(t testing.TB, program string, typ core.QueueType, args ...string) *exec.Cmd {
	t.Helper()
	l.Require(t)
	path, env := l.command(t)
	qt := string(core.QueueQuorum)
	if typ == core.QueueClassic {
		qt = string(core.QueueClassic)
	}
	cmd := exec.Command(path, append([]string{filepath.Join("testdata", program+l.ext)}, args...)...)
	cmd.Env = append(os.Environ(), append(env, "AMQP_URL="+brokertest.Require(t), "QUEUE_TYPE="+qt)...)
	return cmd
}

// repoRoot is the directory of go.mod above the test's working directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

// Case is one cell of the interop matrix.
type Case struct {
	Lang Lang
	// QueueType is how the tutorial program declares its queue:
	// QueueQuorum (today's tutorials) or QueueClassic (the older ones).
	QueueType core.QueueType
	// WarrenFirst: warren declares the queue before the tutorial program
	// does; otherwise the program declares it first.
	WarrenFirst bool
}

// WarrenType is the QueueType warren's config gets to share the queue
// with the tutorial program: empty (the default, quorum) for today's
// tutorials, QueueClassic for the older ones.
func (c Case) WarrenType() core.QueueType {
	if c.QueueType == core.QueueClassic {
		return core.QueueClassic
	}
	return ""
}

// Command is c.Lang.Command with c's queue type.
func (c Case) Command(t testing.TB, program string, args ...string) *exec.Cmd {
	t.Helper()
	return c.Lang.Command(t, program, c.QueueType, args...)
}

// WantQueue fails the test unless queue is what the tutorial program
// declares: a durable quorum queue, or a classic queue of the durability
// the older tutorial gives it.
func (c Case) WantQueue(t testing.TB, queue string, classicDurable bool) {
	t.Helper()
	if c.QueueType == core.QueueClassic {
		brokertest.WantClassic(t, queue, classicDurable)
	} else {
		brokertest.WantQuorum(t, queue)
	}
}

// Matrix runs test, in parallel, for every language, both queue types
// and both start orders, as subtests named like "pika/quorum/warren-first".
func Matrix(t *testing.T, test func(t *testing.T, c Case)) {
	t.Helper()
	for _, l := range Langs {
		for _, typ := range []core.QueueType{core.QueueQuorum, core.QueueClassic} {
			for _, warrenFirst := range []bool{true, false} {
				c := Case{Lang: l, QueueType: typ, WarrenFirst: warrenFirst}
				order := "tutorial-first"
				if warrenFirst {
					order = "warren-first"
				}
				t.Run(l.Name+"/"+string(typ)+"/"+order, func(t *testing.T) {
					t.Parallel()
					l.Require(t)
					test(t, c)
				})
			}
		}
	}
}

// Run runs cmd to its end, within a minute, and returns what it printed;
// it fails the test if cmd fails.
func Run(t testing.TB, cmd *exec.Cmd) string {
	t.Helper()
	p := Start(t, cmd)
	select {
	case <-p.done:
	case <-time.After(time.Minute):
		p.Stop()
		t.Fatalf("%s ran for a minute:\n%s", p.name, p.Output())
	}
	if err := p.wait(); err != nil {
		t.Fatalf("%s: %v\n%s", p.name, err, p.Output())
	}
	return p.Output()
}

// Proc is a tutorial program running beside the test. Its standard
// output and error are read line by line.
type Proc struct {
	name  string
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{} // closed when the output ended

	mu     sync.Mutex
	output strings.Builder
	once   sync.Once
	err    error
}

// Start starts cmd; the test's end stops it.
func Start(t testing.TB, cmd *exec.Cmd) *Proc {
	t.Helper()
	p := &Proc{name: filepath.Base(cmd.Args[1]), cmd: cmd, lines: make(chan string, 256), done: make(chan struct{})}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.output.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody reads them: Output has them
			}
		}
	}()
	t.Cleanup(p.Stop)
	return p
}

// Stop kills the program and waits for it. It is idempotent.
func (p *Proc) Stop() {
	_ = p.cmd.Process.Kill()
	_ = p.wait()
}

func (p *Proc) wait() error {
	p.once.Do(func() {
		<-p.done // Wait closes the pipe: read everything first
		p.err = p.cmd.Wait()
	})
	return p.err
}

// Output is everything the program printed so far.
func (p *Proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.output.String()
}

// Expect waits up to 15 s for a line that contains want, skipping the
// lines before it, and fails the test if none comes.
func (p *Proc) Expect(t testing.TB, want string) string {
	t.Helper()
	timer := time.NewTimer(15 * time.Second)
	defer timer.Stop()
	for {
		select {
		case line := <-p.lines:
			if strings.Contains(line, want) {
				return line
			}
		case <-p.done:
			// Lines may still be buffered.
			select {
			case line := <-p.lines:
				if strings.Contains(line, want) {
					return line
				}
				continue
			default:
			}
			t.Fatalf("%s ended without printing %q:\n%s", p.name, want, p.Output())
		case <-timer.C:
			t.Fatalf("%s printed no %q in 15s:\n%s", p.name, want, p.Output())
		}
	}
}

// Warnings records what warren logs at level WARN and above, for tests
// that check warren declared a queue as the tutorial program did (warren
// warns when it finds a queue with other properties and uses it as it
// is).
type Warnings struct {
	mu   sync.Mutex
	msgs []string
}

// Logger returns a logger that records into w.
func (w *Warnings) Logger() *slog.Logger { return slog.New(warnHandler{w: w}) }

// WantNone fails the test if warren logged that a queue existed with
// other properties.
func (w *Warnings) WantNone(t testing.TB) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if strings.Contains(m, "other properties") {
			t.Errorf("warren warned: %s; want its declaration equivalent to the tutorial's", m)
		}
	}
}

type warnHandler struct {
	w     *Warnings
	attrs []slog.Attr
}

func (h warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h warnHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s", a); return true })
	h.w.mu.Lock()
	h.w.msgs = append(h.w.msgs, b.String())
	h.w.mu.Unlock()
	return nil
}

func (h warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return warnHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h warnHandler) WithGroup(string) slog.Handler { return h }
