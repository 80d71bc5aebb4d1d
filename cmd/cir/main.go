// Command cir trains language models to reason with a code interpreter: one binary holds the
// Qwen2 model, the interleaved sampler, the Python sandbox, the reward checker and the RL update.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }
