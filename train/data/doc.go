// # The toy task
//
// The default job (`make run`) must show the whole method on two CPU cores in ten minutes with
// a byte-vocabulary model of a few million parameters: a short supervised warm-up teaches
// the interpreter format, then RL with the real sandbox must raise held-out accuracy. The
// generators in toy.go are built for that:
//
//   - Answers need exact computation that a tiny model cannot do in its head (products of
//     two- and three-digit numbers, modular powers with exponents in the hundreds, digit sums
//     of 6–9 digit numbers), so accuracy without tools stays near chance and tools make the
//     difference. The operands are short on purpose: a byte-level model of about a million
//     parameters learns to copy two or three digits into its code within a few hundred
//     warm-up steps (measured: 2-digit operands went from 0/40 to 40/40 exact copies between
//     steps 300 and 400 of batch 16), while with 3–5 digit operands and 8–16 digit numbers it
//     had learnt no copying after 800 steps.
//   - Every problem is one short line and its solution one call whose code is the problem
//     rewritten as a Python expression ("Compute 4821*9127." → print(4821*9127)), so a
//     whole example (Format + Demo) is about 120–150 bytes: cheap to train on and to sample
//     at byte level. The expected output is computed in Go with math/big, exactly as Python
//     prints an int; the tests run the demonstrations through /usr/bin/python3 to confirm.
//   - The basic kinds (mul, powmod, digsum) are what the warm-up demonstrates. The composed
//     kinds put a product where a basic kind has a number (mul3: a third factor,
//     mul_digsum: the digit sum of a product, mul_powmod: a product as the base), which the
//     warm-up never shows. A model that learnt "copy the operand text into the code" solves
//     them; one that learnt "copy digits" does not. After the warm-up the policy does the
//     former only part of the time, so the composed kinds give RL a real signal (groups with
//     mixed rewards) and something to improve on. Each composed problem also has a two-call
//     solution (Problem.Chain: the product first, then the rest on its printed value) for a
//     job that opens a second call with the tool-budget schedule.
//   - The held-out split is chosen by a hash of the prompt (one in eight), so training and
//     held-out problems are disjoint whatever the seeds; both splits draw every kind in turn.
//   - The prompt is a compact instruction and the problem (Format), not the long CIR
//     instruction through a chat template: the tiny model has no chat training and every byte
//     of prompt costs attention.
package data
