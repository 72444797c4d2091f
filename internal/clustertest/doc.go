// Package clustertest holds warren's cluster tests, and nothing else: a
// gateway and workers on a three-node RabbitMQ cluster of the test's own
// (brokertest.StartCluster) whose nodes the tests kill with SIGKILL, and
// gateways side by side on one broker behind a round_robin client.
//
// They are ordinary tests, run by go test ./... and so by make test: under
// CI a cluster that cannot start fails them. WARREN_CLUSTER_KILLS sets how
// many times each kind of node is killed (default 2, which fits CI).
package clustertest
