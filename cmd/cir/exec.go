package main

// cmdExec is not built yet; the sandbox work replaces this.
func cmdExec(e *env, args []string) error {
	return errorf("not built yet", "cir exec is not available in this build")
}
