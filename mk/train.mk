# train, tokenizer/jinja, cmd/cir template: Python's jinja2 (Debian's python3-jinja2) is the
# reference the chat-template tests render against.
.PHONY: jinja-deps
jinja-deps:
	@$(APT) python3-jinja2

TEST_DEPS += jinja-deps
