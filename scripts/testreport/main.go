// Command testreport reads "go test -json" on stdin and prints what go
// test prints without -v (each package's ok or FAIL line, the output of
// failed tests), then every skipped test with the reason it gave. It exits
// 1 when a test or a package failed, so that scripts/test.sh keeps go
// test's verdict.
//
//	go test -json ./... | go run ./scripts/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
	Elapsed float64
}

type key struct{ pkg, test string }

func main() {
	out := map[key][]string{}
	var skipped []string
	skipReason := map[string]string{}
	failed := false
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not test2json (a build error before the tests ran): pass it on.
			fmt.Println(sc.Text())
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			out[k] = append(out[k], e.Output)
		case "skip":
			if e.Test == "" {
				fmt.Printf("?   \t%s\t[no test files]\n", e.Package)
				continue
			}
			name := e.Package + " " + e.Test
			skipped = append(skipped, name)
			skipReason[name] = reason(out[k])
			delete(out, k)
		case "pass":
			if e.Test == "" {
				fmt.Printf("ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
			delete(out, k)
		case "fail":
			failed = true
			fmt.Print(strings.Join(out[k], ""))
			if e.Test == "" {
				fmt.Printf("FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
			}
			delete(out, k)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	sort.Strings(skipped)
	fmt.Printf("\n== skipped: %d tests\n", len(skipped))
	for _, s := range skipped {
		fmt.Printf("  %s: %s\n", s, skipReason[s])
	}
	if failed {
		os.Exit(1)
	}
}

// reason is what a skipped test said: its output without the RUN and
// SKIP lines.
func reason(lines []string) string {
	var parts []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		parts = append(parts, t)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " ")
}
