#!/usr/bin/env bash
# run.sh OUTDIR [PHASE...] runs the CUDA suite from a gpu-bundle on a machine with a GPU and no
# Go, and writes OUTDIR/report.md (plus the raw logs beside it).
#
#   make gpu-bundle                 # on a machine with Go and nvcc: gpu-bundle/{cuda.test,cir,...}
#   gpu-bundle/run.sh out           # on the GPU machine: every phase
#   gpu-bundle/run.sh out tests     # one phase at a time (each fits in a few minutes)
#
# Phases: info, tests (the GPU tests, -test.v, with CIR_REQUIRE_GPU=1: a test that finds no GPU
# fails), hf (whole-model log-probs of `cir logprobs` on the GPU against HF transformers' Qwen2 in
# fp32, on random weights written by `cir init`), sanitizer (compute-sanitizer memcheck and
# racecheck on a short subset), bench (Go benchmarks), torch (PyTorch cuBLAS/flash-SDPA
# references), cli (cir bench train/decode on Qwen2.5-0.5B/1.5B shapes). A phase that fails is
# recorded in the report and the next one runs; the exit status is 1 when a phase failed or
# when no GPU test passed.
#
# Before anything, `ldd` must resolve every library of the two binaries (the bundle needs only
# glibc, the version in its REQUIRES file, and the NVIDIA driver; cuBLASLt and NCCL are opened
# later with dlopen), and the report records the commit the bundle was built from.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: run.sh OUTDIR [info|tests|hf|sanitizer|bench|torch|cli ...]}
shift
phases=("$@")
[ ${#phases[@]} -eq 0 ] && phases=(info tests hf sanitizer bench torch cli)
failed=0
mkdir -p "$out"
out=$(cd "$out" && pwd)
report=$out/report.md
py=${PYTHON:-python3}

# cuBLASLt and NCCL are opened with dlopen: add the toolkit next to nvcc and PyTorch's NVIDIA
# wheels to the library path.
libs=()
if command -v nvcc >/dev/null 2>&1; then
  root=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  for d in "$root/lib64" "$root/lib" "$root/targets/x86_64-linux/lib"; do [ -d "$d" ] && libs+=("$d"); done
fi
while IFS= read -r d; do [ -n "$d" ] && libs+=("$d"); done < <($py - 2>/dev/null <<'PY'
import glob, os, site
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for d in glob.glob(os.path.join(r, "nvidia", "*", "lib")) + glob.glob(os.path.join(r, "torch", "lib")):
        print(d)
PY
)
if [ ${#libs[@]} -gt 0 ]; then
  LD_LIBRARY_PATH=$(IFS=:; echo "${libs[*]}")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export LD_LIBRARY_PATH
fi
sanitizer=$(command -v compute-sanitizer || true)
[ -z "$sanitizer" ] && [ -n "${root:-}" ] && [ -x "$root/bin/compute-sanitizer" ] && sanitizer=$root/bin/compute-sanitizer

missing=$(for b in cuda.test cir; do ldd "$here/$b" 2>&1 | grep -E 'not found|not a dynamic' | sed "s|^|$b: |"; done)
if [ -n "$missing" ]; then
  echo "run.sh: the bundle's binaries cannot start on this machine:" >&2
  echo "$missing" >&2
  echo "run.sh: they need $(cat "$here/REQUIRES" 2>/dev/null || echo 'the glibc of the build machine') and the NVIDIA driver; nothing else" >&2
  exit 1
fi
commit=$(cat "$here/COMMIT" 2>/dev/null || echo unknown)

section() { printf '\n## %s\n\n' "$1" >>"$report"; }
fence() { printf '```\n' >>"$report"; cat "$1" >>"$report"; printf '```\n' >>"$report"; }
status() { printf -- '- %s: exit %s, %ss (`%s`)\n' "$1" "$2" "$3" "$4" >>"$report"; }
run() { # run NAME LOG TIMEOUT CMD...
  local name=$1 log=$2 to=$3; shift 3
  local t0=$SECONDS
  (cd "$here" && timeout "$to" "$@") >"$log" 2>&1
  local rc=$?
  status "$name" "$rc" "$((SECONDS - t0))" "$*"
  [ $rc -ne 0 ] && failed=1
  return $rc
}

[ -f "$report" ] || printf '# cir CUDA suite\n\nbundle: %s\ncommit: %s\n' "$here" "$commit" >"$report"

for ph in "${phases[@]}"; do
  case $ph in
  info)
    section "Device ($(date -u +%FT%TZ))"
    { nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,clocks.max.mem --format=csv 2>&1
      command -v nvcc >/dev/null && nvcc --version | tail -n 2
      echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"
      echo "compute-sanitizer: ${sanitizer:-none}"
      $py -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' 2>&1; } >"$out/info.log"
    fence "$out/info.log"
    ;;
  tests)
    section "GPU tests"
    run tests "$out/tests.log" 900 env CIR_REQUIRE_GPU=1 ./cuda.test -test.v -test.count=1 -test.timeout 14m
    passed=$(grep -c -- '--- PASS' "$out/tests.log")
    printf '%s passed, %s failed, %s skipped\n\n' "$passed" \
      "$(grep -c -- '--- FAIL' "$out/tests.log")" "$(grep -c -- '--- SKIP' "$out/tests.log")" >>"$report"
    if [ "$passed" -eq 0 ] || grep -q 'no usable CUDA device' "$out/tests.log"; then
      printf '**No GPU test ran: no usable CUDA device (the GPU tests fail instead of skipping).**\n\n' >>"$report"
      echo "run.sh: no GPU test ran: no usable CUDA device (see $out/tests.log)" >&2
      failed=1
    fi
    grep -E -- '--- (FAIL|SKIP)|^\s+\S+_test.go:[0-9]+:' "$out/tests.log" | head -n 200 >"$out/tests.short"
    fence "$out/tests.short"
    ;;
  hf)
    section "HF transformers parity (cir logprobs on cuda:0 against Qwen2ForCausalLM in fp32)"
    : >"$out/hf.log"
    for cfg in hf-small qwen2.5-0.5b; do
      m=$out/hf-$cfg
      run "init $cfg" "$out/hf-init-$cfg.log" 600 ./cir init --config "$cfg.json" --seed 1 --out "$m" &&
        run "tokens $cfg" "$out/hf-tokens-$cfg.log" 60 "$py" ./hf_logprobs.py tokens "$cfg.json" 4 "$m/tokens.jsonl" &&
        run "logprobs $cfg" "$out/hf-cir-$cfg.log" 600 sh -c \
          './cir logprobs --model "$1" --input "$1/tokens.jsonl" --device cuda:0 >"$1/cir.jsonl"' _ "$m" &&
        run "compare $cfg" "$out/hf-compare-$cfg.log" 900 "$py" ./hf_logprobs.py compare "$m" "$m/tokens.jsonl" "$m/cir.jsonl"
      { echo "$cfg:"; tail -n 3 "$out/hf-compare-$cfg.log" 2>/dev/null; } >>"$out/hf.log"
    done
    fence "$out/hf.log"
    ;;
  sanitizer)
    section "compute-sanitizer"
    if [ -z "$sanitizer" ]; then
      echo "compute-sanitizer not found" >>"$report"
    else
      subset='TestElementwise|TestEmbedding|TestRMSNorm|TestRoPE|TestAttention$|TestAttentionKV|TestCrossEntropy|TestSampleGreedy|TestAdamW'
      run memcheck "$out/memcheck.log" 900 "$sanitizer" --tool memcheck --error-exitcode 1 \
        ./cuda.test -test.count=1 -test.run "$subset" -test.short
      run racecheck "$out/racecheck.log" 900 "$sanitizer" --tool racecheck --error-exitcode 1 \
        ./cuda.test -test.count=1 -test.run 'TestAttention$|TestAttentionKV|TestSampleGreedy'
      tail -n 20 "$out/memcheck.log" >"$out/sanitizer.short"
      tail -n 20 "$out/racecheck.log" >>"$out/sanitizer.short"
      fence "$out/sanitizer.short"
    fi
    ;;
  bench)
    section "Go benchmarks"
    run bench "$out/bench.log" 1500 ./cuda.test -test.run '^$' -test.bench . -test.benchtime 5x -test.timeout 25m
    grep -E '^Benchmark|^(goos|goarch|cpu):' "$out/bench.log" >"$out/bench.short"
    fence "$out/bench.short"
    ;;
  torch)
    section "PyTorch references (cuBLAS GEMMs, flash SDPA)"
    run torch "$out/torch.log" 900 "$py" ./torch_ref.py
    fence "$out/torch.log"
    ;;
  cli)
    section "cir bench (CUDA binary)"
    : >"$out/cli.log"
    for cfg in qwen2.5-0.5b qwen2.5-1.5b; do
      run "train $cfg" "$out/cli-train-$cfg.log" 600 ./cir bench train --config "$cfg.json" --device cuda:0 \
        --batch 1 --seq 4096 --steps 3
      run "decode $cfg B=1" "$out/cli-decode1-$cfg.log" 600 ./cir bench decode --config "$cfg.json" --device cuda:0 --batch 1
      run "decode $cfg B=64" "$out/cli-decode64-$cfg.log" 600 ./cir bench decode --config "$cfg.json" --device cuda:0 --batch 64
      tail -n 5 "$out"/cli-*-"$cfg".log >>"$out/cli.log"
    done
    fence "$out/cli.log"
    ;;
  *)
    echo "run.sh: unknown phase $ph" >&2
    exit 2
    ;;
  esac
done
echo "report: $report"
exit $failed
