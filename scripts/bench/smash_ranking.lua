-- SMASH on its own space: how well does the SMASH score (validation accuracy with generated
-- weights) rank `smash` architectures by their accuracy after training from scratch, next to
-- their parameter count and FLOPs? And what does it cost: generation per architecture, and a
-- hypernetwork training step against a plain training step of the same architectures?
--
--   hypernas run scripts/bench/smash_ranking.lua --experiment smash-ranking --threads 1
--     [--set pool=50 --set train_steps=150 --set fit_steps=500 --set data=fashion-mnist]
--
-- The pool (`pool` architectures, seeded) is trained from scratch with one fixed recipe
-- (`train_steps` SGD steps of batch 64, lr 0.05): the trainings are stored in the experiment and
-- reused by reruns. The hypernetwork is trained with `fit_steps` steps of batch 64 (a fitted one
-- can be loaded with --set checkpoint=FILE). Correlations come with percentile-bootstrap 95 %
-- intervals (1,000 resamples). Writes smash_ranking.md and smash_ranking.csv beside the store.
local data_name = nas.arg("data", "fashion-mnist")
local data = nas.dataset{ name = data_name }
-- A small space by default (banks of 4 channels, layers up to 8 wide, 2 reads per slice: about 7 M
-- multiply-accumulates per 28×28 image), so that 50 trainings fit a CPU.
local space_options = { name = "smash", data = data, N = nas.arg("N", 4), N_max = nas.arg("N_max", 8),
                        width = nas.arg("width", 1), depth_compression = nas.arg("depth_compression", 2),
                        min_layers = nas.arg("min_layers", 1), max_layers = nas.arg("max_layers", 3) }
local space = nas.space(space_options)
local n, train_steps = nas.arg("pool", 50), nas.arg("train_steps", 150)
local fit_steps, eval_images = nas.arg("fit_steps", 500), nas.arg("eval_images", 1000)

-- The labels: every pool architecture trained from scratch with one recipe.
local pool = space:sample(n)
local truth, params, flops = {}, {}, {}
local t_train = nas.clock()
for i, arch in ipairs(pool) do
  local r = nas.train{ arch = arch, space = space, data = data, epochs = 1, max_steps = train_steps, batch = 64,
                       lr = 0.05, valid_images = 1000, test_images = 5000 }
  truth[i] = r.test_accuracy
  local st = space:stats(arch)
  params[i], flops[i] = st.params, st.flops
  nas.log(string.format("trained %d/%d: test accuracy %.4f%s", i, n, r.test_accuracy, r.reused and " (reused)" or ""))
end
local train_seconds = nas.clock() - t_train

-- A plain training step of the pool's architectures (batch 64), for the ratio below.
local probe = math.min(5, n)
local t_plain = nas.clock()
for i = 1, probe do
  nas.train{ arch = pool[i], space = space, data = data, epochs = 1, max_steps = 20, batch = 64, lr = 0.05,
             valid_images = 100, test_images = 100, reuse = false }
end
local plain_step = (nas.clock() - t_plain) / (20 * probe)

-- The hypernetwork.
local smash = nas.surrogate("smash")
local checkpoint = nas.arg("checkpoint", "")
local fit_seconds = 0
if checkpoint ~= "" then
  smash:load(checkpoint)
else
  local t = nas.clock()
  smash:fit{ space = space, data = data, epochs = 1000, steps = fit_steps, batch = 64 }
  fit_seconds = nas.clock() - t
  checkpoint = smash:save("smash.ckpt")  -- the path it was written to, in the experiment
end
local t_step = nas.clock()
smash:fit{ space = space, data = data, epochs = 1, steps = 10, batch = 64 }  -- not saved: timing only
local hyper_step = (nas.clock() - t_step) / 10
smash:load(checkpoint)  -- back to the fitted state before scoring

-- Scores, and the cost of generating weights alone (32 images: generation dominates).
local t_score = nas.clock()
local scores = smash:score{ space = space, data = data, archs = pool, images = eval_images }
local score_seconds = (nas.clock() - t_score) / n
local t_gen = nas.clock()
smash:score{ space = space, data = data, archs = pool, images = 32, batch = 32, reuse = false }
local gen_seconds = (nas.clock() - t_gen) / n

local function interval(metric, s)
  local v, lo, hi = nas.metrics.bootstrap(metric, s, truth, { samples = 1000, seed = nas.seed })
  return string.format("%.3f [%.2f, %.2f]", v, lo, hi)
end
local top = math.max(1, math.floor(n / 10 + 0.5))
local rows, csv = {}, { "arch,smash_score,params,flops,test_accuracy" }
for _, m in ipairs{ { "smash (generated weights)", scores }, { "params", params }, { "flops", flops } } do
  rows[#rows + 1] = string.format("| %s | %s | %s | %s | %.2f |", m[1], interval("pearson", m[2]),
    interval("spearman", m[2]), interval("kendall", m[2]), nas.metrics.top_k_overlap(m[2], truth, top))
end
for i, arch in ipairs(pool) do
  csv[#csv + 1] = string.format("%q,%.9g,%d,%d,%.9g", arch, scores[i], params[i], flops[i], truth[i])
end
local lo, hi = math.huge, -math.huge
for _, a in ipairs(truth) do lo = math.min(lo, a); hi = math.max(hi, a) end
local report = table.concat({
  string.format("Pool: %d `smash` architectures (N = %d, N_max = %d, widening %d, depth_compression %d, %d-%d layers per block) on %s, seed %d.",
    n, space_options.N, space_options.N_max, space_options.width, space_options.depth_compression,
    space_options.min_layers, space_options.max_layers, data_name, nas.seed),
  string.format("Ground truth: test accuracy (5,000 images) after %d SGD steps of batch 64, lr 0.05; range %.3f to %.3f (%.0f s of training).",
    train_steps, lo, hi, train_seconds),
  string.format("SMASH: %d hypernetwork steps of batch 64 (%.0f s); scores on %d validation images.", fit_steps,
    fit_seconds, eval_images),
  string.format("Intervals: percentile bootstrap, 95 %%, 1,000 resamples. P@10%%: precision of the top %d.", top), "",
  "| score | Pearson | Spearman | Kendall | P@10% |", "| --- | --- | --- | --- | --- |", table.concat(rows, "\n"), "",
  "| cost | seconds |", "| --- | --- |",
  string.format("| score one architecture (%d images) | %.3f |", eval_images, score_seconds),
  string.format("| generate + 32 images | %.3f |", gen_seconds),
  string.format("| hypernetwork training step (batch 64, a new architecture) | %.3f |", hyper_step),
  string.format("| plain training step of a pool architecture (batch 64) | %.3f |", plain_step),
  string.format("| ratio hypernetwork step / plain step | %.2f |", hyper_step / plain_step), "" }, "\n")
print("\n" .. report)
nas.write_file("smash_ranking.csv", table.concat(csv, "\n") .. "\n")
print("written to " .. nas.write_file("smash_ranking.md", report))
