// Package multicall runs one of several programs linked into one binary,
// busybox style: the program is named by the binary's own name (a symlink
// named after it) or, when the binary is called by its own name, by its first
// argument. Each program then sees os.Args as if it were its own binary.
package multicall

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Main runs the program of `programs` that the command line names, and exits
// with its exit code; `self` is the binary's own name.
func Main(self string, programs map[string]func(args []string) int) {
	names := make([]string, 0, len(programs))
	for name := range programs {
		names = append(names, name)
	}
	sort.Strings(names)
	usage := fmt.Sprintf("usage: %s <%s> [flags...]", self, strings.Join(names, "|"))

	name := filepath.Base(os.Args[0])
	args := os.Args
	if name == self {
		if len(os.Args) < 2 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		name = os.Args[1]
		args = os.Args[1:]
	}
	program, ok := programs[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "%s: unknown component %q\n%s\n", self, name, usage)
		os.Exit(2)
	}
	// Each component parses os.Args itself: present it as if it were its own binary.
	os.Args = args
	os.Exit(program(args))
}
