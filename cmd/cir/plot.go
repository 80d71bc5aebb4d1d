package main

// cmdPlot is not built yet; the trainer work replaces this.
func cmdPlot(e *env, args []string) error {
	return errorf("not built yet", "cir plot is not available in this build")
}
