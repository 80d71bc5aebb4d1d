package main

// cmdTokenize is not built yet; the tokenizer work replaces this.
func cmdTokenize(e *env, args []string) error {
	return errorf("not built yet", "cir tokenize is not available in this build")
}

// cmdDetokenize is not built yet; the tokenizer work replaces this.
func cmdDetokenize(e *env, args []string) error {
	return errorf("not built yet", "cir detokenize is not available in this build")
}
