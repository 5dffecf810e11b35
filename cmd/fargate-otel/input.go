package main

import (
	"fmt"
	"io"
	"os"
)

// readInputs reads every -f argument ("-" is stdin), one input each: each
// is read as YAML or JSON on its own.
func readInputs(stdin io.Reader, files []string) ([][]byte, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("no input: give -f FILE, or -f - to read standard input")
	}
	var out [][]byte
	for _, name := range files {
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		out = append(out, data)
	}
	return out, nil
}
