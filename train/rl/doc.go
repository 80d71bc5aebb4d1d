// Package rl holds the arithmetic of the policy-gradient update: advantage estimators, the
// PPO clipped policy loss with its per-token gradient, loss aggregation, the KL penalty
// against a reference policy, the tool-budget and learning-rate schedules, and the
// dynamic-sampling and overlong filters.
//
// The semantics follow verl's core_algos (compute_grpo_outcome_advantage,
// compute_reinforce_plus_plus_baseline_outcome_advantage, compute_policy_loss_vanilla,
// agg_loss, kl_penalty) and DAPO's reward shaping; the code is this package's own.
//
// Data layout. A batch is ragged: row i holds the response tokens of trajectory i (tool
// tokens included, prompt excluded), and every per-token quantity (log-probs, advantages,
// weights, gradients) is a [][]float32 with the same row lengths. Which tokens take part in
// the loss is given by a mask ([][]bool, see MaskFromRoles).
//
// Aggregation is expressed as per-token weights (Weights): the aggregated loss is
// Σ_i Σ_t w[i][t]·ℓ[i][t], with w = 0 off the mask. Weights are computed once for a whole
// mini-batch; a micro-batch then passes its own rows of the weights to PolicyLoss, and the
// sum of the micro-batch losses (and gradients) is exactly the mini-batch loss (and
// gradient), whatever the micro-batch split. (Old verl versions took the token mean per
// micro-batch and averaged those, which depends on the split; this package does not.)
//
// The gradient of the loss with respect to each token's log-prob, dL/dlogp, is what the
// model's backward consumes; it is accumulated (+=) into a caller-owned [][]float32 so the
// policy, KL and entropy terms can add into one buffer.
package rl
