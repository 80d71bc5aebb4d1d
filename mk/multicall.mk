# The multi-call job (configs/toy-multicall.yaml): the budget schedule against a budget held at
# one call, from one warm-up, on the CPU. Writes runs/multicall/compare.json and compare.png.
.PHONY: run-multicall
run-multicall: deps-run cpu-binary
	./$(BIN) train --config configs/toy-multicall.yaml
