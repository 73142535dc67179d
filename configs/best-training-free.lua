-- The best evaluator measured on NAS-Bench-201 that needs no training at all (docs/benchmarks.md,
-- "Every evaluator side by side"): the equal-weight rank average of jacob_cov, synflow and the
-- parameter count, about 0.3 s per architecture on one CPU thread at nb201's CPU size.
--   hypernas compare --surrogates "preset:best-training-free" ...
--   local p = nas.preset("best-training-free"); local s = nas.surrogate(p.surrogate, p.options)
return {
  spec = "jacob_cov+synflow+params",
  surrogate = "ensemble",
  options = { members = "jacob_cov;synflow;params", weights = "1,1,1" },
}
