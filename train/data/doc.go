// # The toy task
//
// The default job (`make run`) must show the whole method on two CPU cores in ten minutes with
// a byte-vocabulary model of a few million parameters: a short supervised warm-up teaches
// the interpreter format, then RL with the real sandbox must raise held-out accuracy. The
// generators in toy.go are built for that:
//
//   - Answers need exact computation that a tiny model cannot do in its head (products of two
//     three-digit numbers, modular powers with exponents in the hundreds, digit sums of powers
//     with three-digit exponents), so accuracy without tools stays near zero and tools make the
//     difference.
//   - Every problem is one short line and its solution one call whose code is the problem
//     rewritten as a Python expression ("Compute 482*913." → print(482*913)), and every
//     operand of a kind has a fixed number of digits, so what the model must learn is to
//     copy a few digits into its code. Measured (batch 16, lr 2e-3 cosine, the 0.8M toy
//     model): exact copies of held-out operands go from 0/40 to 40/40 per kind between warm-up
//     steps 1,250 and 1,750 (powmod, which also drops " mod ", by step 3,000); with the
//     compact instruction that used to open the prompt no copying had appeared by step 1,750,
//     and a '^' the code writes as '**' (two bytes for one) was copied far less often than one
//     written as ','. The expected output is computed in Go with math/big, exactly as Python
//     prints an int; the tests run the demonstrations through /usr/bin/python3 to confirm.
//   - The warm-up imitates a teacher (data.toy.direct) that, for some kinds, states the answer
//     without calling the interpreter — as a model that has not learnt when to call the
//     interpreter does. The student cannot compute a six-digit product in its head, so
//     imitating those answers fails; RL has to discover that calling the interpreter pays.
//     The default job's teacher answers half of the products directly.
//   - The composed kinds put a product where a basic kind has a number (mul3: a third factor,
//     mul_digsum: the digit sum of a product, mul_powmod: a product as the base), which the
//     warm-up never shows: a harder exploration problem than the default job's. Each composed
//     problem also has a two-call solution (Problem.Chain: the product first, then the rest
//     on its printed value).
//   - The held-out split is chosen by a hash of the prompt (one in eight), so training and
//     held-out problems are disjoint whatever the seeds; both splits draw every kind in turn.
//   - The prompt is the problem alone (Format), not the CIR instruction through a chat
//     template: the tiny model has no chat training and every byte of prompt costs attention.
package data
