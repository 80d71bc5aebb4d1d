package main

// cmdEval is not built yet; the trainer work replaces this.
func cmdEval(e *env, args []string) error {
	return errorf("not built yet", "cir eval is not available in this build")
}
