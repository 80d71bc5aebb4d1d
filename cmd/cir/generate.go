package main

// cmdGenerate is not built yet; the rollout work replaces this.
func cmdGenerate(e *env, args []string) error {
	return errorf("not built yet", "cir generate is not available in this build")
}
