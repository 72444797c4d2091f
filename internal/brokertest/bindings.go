package brokertest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Binding is one binding from an exchange to a queue, as the broker lists
// it.
type Binding struct {
	Queue string
	Key   string
}

// Bindings lists the bindings whose source is exchange (in the default
// virtual host), as the broker holds them now: from the management API,
// or from rabbitmqctl when the API does not answer. Without either the
// test fails under CI and is skipped, loudly, otherwise.
func Bindings(t testing.TB, exchange string) []Binding {
	t.Helper()
	bs, aerr := apiBindings(exchange)
	if aerr == nil {
		return bs
	}
	bs, cerr := ctlBindings(exchange)
	if cerr == nil {
		return bs
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("brokertest: cannot list the bindings of %q under CI: %v; %v", exchange, aerr, cerr)
	}
	t.Skipf("SKIPPING: cannot list the bindings of %q (neither the management API nor rabbitmqctl answers): %v; %v", exchange, aerr, cerr)
	return nil
}

func apiBindings(exchange string) ([]Binding, error) {
	base, err := url.Parse(ManagementURL())
	if err != nil {
		return nil, fmt.Errorf("RABBITMQ_MANAGEMENT_URL: %w", err)
	}
	u := base.JoinPath("/api/exchanges", "%2F", exchange, "bindings", "source").String()
	resp, err := httpClient.Get(u)
	if err != nil {
		return nil, fmt.Errorf("list bindings (is rabbitmq_management enabled?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list bindings: %s", resp.Status)
	}
	var all []struct {
		Destination     string `json:"destination"`
		DestinationType string `json:"destination_type"`
		RoutingKey      string `json:"routing_key"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return nil, fmt.Errorf("list bindings: %w", err)
	}
	bs := make([]Binding, 0, len(all))
	for _, b := range all {
		if b.DestinationType == "queue" {
			bs = append(bs, Binding{Queue: b.Destination, Key: b.RoutingKey})
		}
	}
	return bs, nil
}

func ctlBindings(exchange string) ([]Binding, error) {
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", "-q", "--no-table-headers", "list_bindings",
		"source_name", "destination_kind", "destination_name", "routing_key").Output()
	if err != nil {
		return nil, fmt.Errorf("rabbitmqctl list_bindings: %w", err)
	}
	var bs []Binding
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimRight(line, "\n"), "\t")
		if len(f) == 4 && f[0] == exchange && f[1] == "queue" {
			bs = append(bs, Binding{Queue: f[2], Key: f[3]})
		}
	}
	return bs, nil
}
