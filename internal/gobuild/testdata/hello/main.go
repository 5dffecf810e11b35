// Command hello is what the tests of gobuild build.
package main

import "fmt"

func main() { fmt.Println("hello from a build") }
