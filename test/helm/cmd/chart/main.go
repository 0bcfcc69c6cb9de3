// Command chart lints and packages the offerfeed Helm chart with Helm's Go SDK, so neither
// needs the helm binary:
//
//	go run ./cmd/chart lint DIR          # helm lint --strict DIR
//	go run ./cmd/chart package DIR OUT   # helm package DIR -d OUT (after lint)
package main

import (
	"fmt"
	"os"

	"github.com/offerfeed/offerfeed/test/helm"
)

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	switch cmd, dir := os.Args[1], os.Args[2]; {
	case cmd == "lint" && len(os.Args) == 3:
		msgs, err := helm.Lint(dir, "offerfeed-system", nil)
		for _, m := range msgs {
			fmt.Println(m)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%s: linted, no warnings\n", dir)
	case cmd == "package" && len(os.Args) == 4:
		path, err := helm.Package(dir, os.Args[3])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println(path)
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chart lint DIR | chart package DIR OUTDIR")
	os.Exit(2)
}
