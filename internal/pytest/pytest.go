// Package pytest runs the tutorials' Python (pika) scripts from Go tests, for
// interoperability tests against clients warren did not write.
package pytest

import (
	"context"
	"os"
	"os/exec"
	"testing"
)

// Python is the interpreter with Debian's python3-pika.
const Python = "/usr/bin/python3"

// Require stops the test when pika is not importable: t.Fatal under CI
// (make test installs it), t.Skip otherwise.
func Require(t testing.TB) {
	t.Helper()
	if err := exec.Command(Python, "-c", "import pika").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s cannot import pika under CI: %v (make test installs python3-pika)", Python, err)
		}
		t.Skipf("SKIPPING interop test: %s cannot import pika: %v (apt-get install python3-pika)", Python, err)
	}
}

// Command returns an exec.Cmd running script with args under Python, with
// AMQP_URL set to the tests' broker.
func Command(ctx context.Context, t testing.TB, script, amqpURL string, args ...string) *exec.Cmd {
	t.Helper()
	Require(t)
	cmd := exec.CommandContext(ctx, Python, append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "AMQP_URL="+amqpURL)
	return cmd
}
