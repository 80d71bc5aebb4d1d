package main

// cmdBench is not built yet; the foundation work replaces this.
func cmdBench(e *env, args []string) error {
	return errorf("not built yet", "cir bench is not available in this build")
}
