package brokertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// ManagementURL is the broker's management API, from RABBITMQ_MANAGEMENT_URL
// (default: the local broker's, with the guest user).
func ManagementURL() string {
	if u := os.Getenv("RABBITMQ_MANAGEMENT_URL"); u != "" {
		return u
	}
	return "http://guest:guest@127.0.0.1:15672"
}

// No keep-alive: tests check for leaked goroutines.
var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

// CloseConnections makes the broker close every connection whose client
// named itself name (the connection_name property), as a broker-side drop
// of that connection alone. It returns how many it closed. The management
// API may list a new connection only after a moment: callers retry.
func CloseConnections(name string) (int, error) {
	base, err := url.Parse(ManagementURL())
	if err != nil {
		return 0, err
	}
	resp, err := httpClient.Get(base.JoinPath("/api/connections").String() + "?columns=name,client_properties.connection_name")
	if err != nil {
		return 0, fmt.Errorf("list connections (is rabbitmq_management enabled?): %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("list connections: %s", resp.Status)
	}
	var conns []struct {
		Name             string `json:"name"`
		ClientProperties struct {
			ConnectionName string `json:"connection_name"`
		} `json:"client_properties"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&conns); err != nil {
		return 0, fmt.Errorf("list connections: %w", err)
	}
	closed := 0
	for _, c := range conns {
		if c.ClientProperties.ConnectionName != name {
			continue
		}
		req, _ := http.NewRequest(http.MethodDelete, base.JoinPath("/api/connections", c.Name).String(), nil)
		req.Header.Set("X-Reason", "closed by a warren test")
		resp, err := httpClient.Do(req)
		if err != nil {
			return closed, fmt.Errorf("close connection %q: %w", c.Name, err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			closed++
		}
	}
	return closed, nil
}

// listNames returns the names of the default virtual host's queues or
// exchanges (kind) that start with prefix, or why the management API did
// not answer.
func listNames(kind, prefix string) ([]string, error) {
	base, err := url.Parse(ManagementURL())
	if err != nil {
		return nil, fmt.Errorf("RABBITMQ_MANAGEMENT_URL: %w", err)
	}
	resp, err := httpClient.Get(base.JoinPath("/api", kind, "%2F").String() + "?columns=name")
	if err != nil {
		return nil, fmt.Errorf("list %s (is rabbitmq_management enabled?): %w", kind, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("list %s: %s", kind, resp.Status)
	}
	var all []struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&all); err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	var names []string
	for _, e := range all {
		if strings.HasPrefix(e.Name, prefix) {
			names = append(names, e.Name)
		}
	}
	return names, nil
}
