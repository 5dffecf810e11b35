package main

import (
	"fmt"
	"io"
	"os"
)

// readInputs reads every -f argument ("-" is stdin) and joins them as one
// YAML stream.
func readInputs(stdin io.Reader, files []string) ([]byte, error) {
	if len(files) == 0 {
		return nil, fmt.Errorf("no input: give -f FILE, or -f - to read standard input")
	}
	var out []byte
	for i, name := range files {
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
		if i > 0 {
			if len(out) > 0 && out[len(out)-1] != '\n' {
				out = append(out, '\n')
			}
			out = append(out, "---\n"...)
		}
		out = append(out, data...)
	}
	return out, nil
}
