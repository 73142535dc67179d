-- The best cheap evaluator measured on NAS-Bench-201 (docs/benchmarks.md, "Every evaluator side
-- by side"): the equal-weight rank average of a GHN trained for 8,000 steps (the plugin's
-- defaults, at the nb201 size it scores: cells_per_stage = 1, channels = 8), jacob_cov, synflow
-- and the parameter count. `spec` is for `hypernas compare --surrogates preset:best-evaluator`
-- (fit=8000 trains the GHN there, about 25 CPU-minutes, once: reruns load its checkpoint);
-- `surrogate` and `options` are for a script:
--   local p = nas.preset("best-evaluator")
--   local s = nas.surrogate(p.surrogate, p.options)
--   s:fit{ space = space, data = data, steps = 8000, batch = 64 }   -- trains the GHN member
return {
  spec = "ghn:fit=8000+jacob_cov+synflow+params",
  surrogate = "ensemble",
  options = { members = "ghn;jacob_cov;synflow;params", weights = "1,1,1,1" },
}
