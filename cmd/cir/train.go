package main

// cmdTrain is not built yet; the trainer work replaces this.
func cmdTrain(e *env, args []string) error {
	return errorf("not built yet", "cir train is not available in this build")
}
