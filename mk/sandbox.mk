# train/sandbox: the executor runs the model's code with Debian's /usr/bin/python3 (numpy,
# sympy) under bubblewrap; as root it drops to an unprivileged uid with setpriv (util-linux).
.PHONY: sandbox-deps
sandbox-deps:
	@$(APT) bubblewrap util-linux python3 python3-numpy python3-sympy

TEST_DEPS += sandbox-deps
