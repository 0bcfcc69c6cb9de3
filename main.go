// Command offerfeed is the offerfeed operator, its gateway sidecar and their tools.
package main

import (
	"os"

	"github.com/offerfeed/offerfeed/internal/cmd"
)

func main() {
	os.Exit(cmd.Main(os.Args[1:]))
}
