// Package deploytest tests the deployment files in deploy/: the Prometheus
// alert rules and their promtool unit tests, the example Prometheus
// configuration, and the Grafana dashboards. It holds no code, only tests:
//
//	go test ./internal/deploytest/
//
// The tests run promtool (Debian package prometheus) on the rule files and on
// every PromQL expression of the dashboards, and check that each metric and
// label they use is one internal/metrics exports. Without promtool on PATH
// the promtool tests skip, unless the environment variable CI is set, in
// which case they fail.
package deploytest
