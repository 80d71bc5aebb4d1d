package main

// cmdInit is not built yet; the foundation work replaces this.
func cmdInit(e *env, args []string) error {
	return errorf("not built yet", "cir init is not available in this build")
}

// cmdLogprobs is not built yet; the foundation work replaces this.
func cmdLogprobs(e *env, args []string) error {
	return errorf("not built yet", "cir logprobs is not available in this build")
}

// cmdGrad is not built yet; the foundation work replaces this.
func cmdGrad(e *env, args []string) error {
	return errorf("not built yet", "cir grad is not available in this build")
}
