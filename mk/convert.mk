# `cir convert` test data: @huggingface/gguf, an independent GGUF parser, pinned, in
# testdata-cache/ (git-ignored). The GGUF tests that use it skip without it.
GGUF_NPM_VERSION := 0.4.6
GGUF_NPM_DIR     := testdata-cache/npm-gguf

.PHONY: convert-deps
convert-deps: $(GGUF_NPM_DIR)/.installed-$(GGUF_NPM_VERSION)

$(GGUF_NPM_DIR)/.installed-$(GGUF_NPM_VERSION):
	@command -v node >/dev/null || $(APT) nodejs
	@command -v npm >/dev/null || $(APT) npm
	mkdir -p $(GGUF_NPM_DIR)
	npm install --prefix $(GGUF_NPM_DIR) --no-audit --no-fund --loglevel=error @huggingface/gguf@$(GGUF_NPM_VERSION)
	touch $@

TEST_DEPS += convert-deps
