#!/usr/bin/env bash
# mutants.sh: seeded bugs in the kernels, each of which the emulated engine/cuda suite must catch
# (make test-cuda-emu runs it). A mutant is one edit of one kernel source (a bound off by one, a
# barrier removed, a sign or a constant changed; the list below); it is compiled like the
# real kernels into a copy of the emulator's library, which the already linked test binary
# loads in place of the real one (LD_LIBRARY_PATH), and the tests named with it must fail.
#
#   kernels/emu/mutants.sh TEST_BINARY     (EMU_CXX and EMU_KFLAGS from mk/cuda.mk)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
: "${EMU_CXX:=g++}" "${EMU_KFLAGS:?EMU_KFLAGS from mk/cuda.mk}"
objs=$root/kernels/build/emu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# file | sed expression (must change the file) | tests that must fail | what the bug is
mutants=(
  'elementwise.cu|s/i < n; i += (size_t)gridDim.x \* blockDim.x)\n    stf(dst/i <= n; i += (size_t)gridDim.x * blockDim.x)\n    stf(dst/|TestElementwise|bound off by one in the conversion loop'
  'common.cuh|s/  if (lane == 0) sh\[w\] = v;\n  __syncthreads();\n  v = lane < nw ? sh\[lane\] : 0.f;/  if (lane == 0) sh[w] = v;\n  v = lane < nw ? sh[lane] : 0.f;/|TestRMSNorm|barrier removed in block_sum between the partial sums and their reads'
  'attention.cu|s/    const int k0 = t \* ATT_KT;\n    __syncthreads();\n/    const int k0 = t * ATT_KT;\n/|TestAttention$/lens=.5_17_40|barrier removed before a key tile of the attention forward is overwritten'
  'attention.cu|s/const bool valid = q < L && k <= q;/const bool valid = q < L \&\& k < q;/|TestAttention$/lens=.5_17_40|causal mask off by one'
  'loss.cu|s/logp\[blockIdx.x\] = ldf(logits, dt, row + tg) - l;/logp[blockIdx.x] = ldf(logits, dt, row + tg) + l;/|TestCrossEntropy|sign flipped in the target log-probability'
  'elementwise.cu|s/for (int w = 0; w < (int)(blockDim.x >> 5); w++) t += sh\[w\];/for (int w = 0; w <= (int)(blockDim.x >> 5); w++) t += sh[w];/|TestElementwise|bound off by one over a shared array (sum of squares)'
  'attention.cu|s/ke = bad ? kb : min(kb + chunk, p + 1);/ke = bad ? kb : min(kb + chunk, p);/|TestAttentionKV|decoding attention leaves out the newest key'
  'optim.cu|s/float mi = m\[i\] + (g - m\[i\]) \* (1.f - b1);/float mi = m[i] + (g - m[i]) * (1.f - b2);/|TestAdamW|wrong decay in the first moment of AdamW'
)

caught=0
for m in "${mutants[@]}"; do
  IFS='|' read -r file expr tests what <<<"$m"
  rm -rf "$work/src" "$work/lib" && mkdir -p "$work/src" "$work/lib"
  cp -r "$root/kernels" "$root/third_party" "$work/src/"
  rm -rf "$work/src/kernels/build"
  sed -i -z "$expr" "$work/src/kernels/$file"  # -z: an expression may span lines
  if cmp -s "$root/kernels/$file" "$work/src/kernels/$file"; then
    echo "mutants.sh: the mutant '$what' no longer applies to kernels/$file: update it" >&2
    exit 1
  fi
  # recompile what includes the mutated file, take the other objects as built
  cp "$objs"/*.o "$work/lib/" && mkdir -p "$work/lib/emu" && cp "$objs"/emu/*.o "$work/lib/emu/"
  srcs=$file
  [ "$file" = common.cuh ] && srcs=$(cd "$root/kernels" && ls *.cu | grep -v check_abi)
  for s in $srcs; do
    (cd "$work/src" && $EMU_CXX $EMU_KFLAGS -c "kernels/$s" -o "$work/lib/${s%.cu}.tmp" &&
      objcopy --redefine-syms=kernels/emu/hooks.syms "$work/lib/${s%.cu}.tmp" "$work/lib/${s%.cu}.o")
  done
  $EMU_CXX -shared -fsanitize=address -o "$work/lib/libcirkernels_emu.so" "$work/lib"/*.o "$work/lib/emu"/*.o -ldl -lpthread
  t0=$SECONDS
  if (cd "$root/engine/cuda" && LD_LIBRARY_PATH=$work/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} \
        timeout 600 "$bin" -test.count=1 -test.run "$tests" >"$work/log" 2>&1); then
    echo "mutant NOT caught: $what (kernels/$file, $tests)" >&2
    tail -n 20 "$work/log" >&2
    exit 1
  fi
  how=$(grep -m1 -oE 'cir-emu: .{0,90}|ERROR: AddressSanitizer: [a-z-]+|--- FAIL: [^ ]+|[a-zA-Z ]+: [0-9]+ of [0-9]+ values off' "$work/log" || true)
  echo "mutant caught in $((SECONDS - t0))s: $what ($how)"
  caught=$((caught + 1))
done
echo "mutants.sh: $caught of ${#mutants[@]} mutants caught"
