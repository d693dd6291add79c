// Command testsummary reads `go test -json` on stdin, prints failures with
// their output and a one-line count per package, and ends with the totals;
// it exits non-zero when anything failed. csi-sanity's own spec counts are
// passed through, since one Go test runs a hundred specs.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
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

type counts struct{ pass, fail, skip int }

var sanityLine = regexp.MustCompile(`(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped`)
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

func main() {
	perTest := flag.Bool("tests", false, "also print every top-level test with its result and duration")
	flag.Parse()
	type result struct {
		name, action string
		elapsed      float64
	}
	var tests []result
	pkgs := map[string]*counts{}
	elapsed := map[string]float64{}
	output := map[string][]string{} // package/test -> output lines
	var failed []string
	var sanity []string
	buildFailed := false
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	for in.Scan() {
		var e event
		if err := json.Unmarshal(in.Bytes(), &e); err != nil {
			fmt.Println(in.Text()) // build errors arrive as plain text
			buildFailed = true
			continue
		}
		c := pkgs[e.Package]
		if c == nil {
			c = &counts{}
			pkgs[e.Package] = c
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			output[key] = append(output[key], e.Output)
			if m := sanityLine.FindStringSubmatch(ansi.ReplaceAllString(e.Output, "")); m != nil {
				sanity = append(sanity, fmt.Sprintf("%s: csi-sanity %s passed, %s failed, %s pending, %s skipped", short(e.Package), m[1], m[2], m[3], m[4]))
			}
		case "pass", "fail", "skip":
			if e.Test != "" && !strings.Contains(e.Test, "/") {
				tests = append(tests, result{e.Test, e.Action, e.Elapsed})
			}
		}
		switch e.Action {
		case "pass":
			if e.Test == "" {
				elapsed[e.Package] = e.Elapsed
			} else if !strings.Contains(e.Test, "/") {
				c.pass++
			}
		case "fail":
			if e.Test == "" {
				elapsed[e.Package] = e.Elapsed
				if c.fail == 0 {
					failed = append(failed, e.Package)
				}
			} else if !strings.Contains(e.Test, "/") {
				c.fail++
				failed = append(failed, key)
			}
		case "skip":
			if e.Test != "" && !strings.Contains(e.Test, "/") {
				c.skip++
			}
		}
	}
	for _, k := range failed {
		fmt.Printf("\n--- FAIL %s\n%s", k, strings.Join(output[k], ""))
	}
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	var total counts
	fmt.Println()
	for _, p := range names {
		c := pkgs[p]
		total.pass += c.pass
		total.fail += c.fail
		total.skip += c.skip
		if c.pass+c.fail+c.skip == 0 {
			continue
		}
		fmt.Printf("%-50s %4d passed %3d failed %3d skipped  %6.1fs\n", short(p), c.pass, c.fail, c.skip, elapsed[p])
	}
	for _, s := range sanity {
		fmt.Println(s)
	}
	if *perTest {
		fmt.Println()
		for _, r := range tests {
			fmt.Printf("%-4s %-50s %7.1fs\n", strings.ToUpper(r.action), r.name, r.elapsed)
		}
	}
	fmt.Printf("\nTOTAL: %d passed, %d failed, %d skipped\n", total.pass, total.fail, total.skip)
	if total.fail > 0 || len(failed) > 0 || buildFailed {
		os.Exit(1)
	}
}

func short(p string) string { return strings.TrimPrefix(p, "github.com/ec2csi/ec2csi/") }
