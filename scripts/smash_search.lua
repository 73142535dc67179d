-- SMASH: One-Shot Model Architecture Search through HyperNetworks (Brock et al., ICLR 2018),
-- end to end:
--   1. train the SMASH hypernetwork (the `smash` surrogate): a new random memory-bank network of
--      the `smash` space every batch, its 1×1 bottleneck weights generated from the network's
--      ±1 architecture tensor, its other weights learned (sliced from one maximum-size kernel
--      per block),
--   2. SMASH's search (the `perturb` strategy): score `candidates` (500) random architectures by
--      validation accuracy with generated weights (SMASH reports the error), then
--      `perturbations` (100) perturbations of the best (p = 0.05) and a Markov chain of `chain`
--      (100) steps,
--   3. train the winner from scratch, and for reference a random architecture of the space with
--      the same recipe,
--   4. report.md with plots: the hypernetwork's loss, SMASH score against parameter count for
--      every candidate, the perturbation trace, the winner's learning curve.
-- Everything is recorded in the experiment's store: a rerun reuses every score and training.
--
--   hypernas run scripts/smash_search.lua                     (Fashion-MNIST, CPU, ~15 min)
--   hypernas run scripts/smash_search.lua --set data=cifar10 --set preset=paper --device cuda
--   hypernas run scripts/smash_search.lua --set checkpoint=results/smash_search/smash.ckpt

-- `cpu` fits this machine's budget (banks of 4 channels, layers up to 8 wide, 2 reads per slice,
-- 1-3 layers per block: about 7 M multiply-accumulates per 28×28 image, a twentieth of the
-- space's defaults);
-- `paper` is the authors' CIFAR setting (N = 8, N_max = 64,
-- the widening factor 4, up to 12 layers per block) with a hypernetwork trained for 100 epochs
-- (the paper: 100 epochs of batch 50) and the winner trained for 10 epochs (the paper trains it
-- fully, which is out of scope here).
local presets = {
  cpu = { N = 4, N_max = 8, width = 1, depth_compression = 2, min_layers = 1, max_layers = 3, fit_steps = 400,
          fit_epochs = 100, batch = 64, candidates = 500, perturbations = 100, chain = 100, eval_images = 200,
          train_epochs = 3, train_epoch_steps = 100 },
  paper = { N = 8, N_max = 64, width = 4, depth_compression = 4, min_layers = 4, max_layers = 12, fit_steps = 0,
            fit_epochs = 100, batch = 50, candidates = 500, perturbations = 100, chain = 100, eval_images = 0,
            train_epochs = 10, train_epoch_steps = 0 },
}
local preset_name = nas.arg("preset", "cpu")
local preset = presets[preset_name]
assert(preset, "preset must be cpu or paper, got '" .. tostring(preset_name) .. "'")
local function opt(key) return nas.arg(key, preset[key]) end

local data_name = nas.arg("data", "fashion-mnist")
local data = nas.dataset{ name = data_name }
local space_options = { name = "smash", data = data }
for _, key in ipairs{ "N", "N_max", "width", "depth_compression", "min_layers", "max_layers" } do
  space_options[key] = opt(key)
end
for _, key in ipairs{ "blocks", "bottleneck", "max_kernel", "max_dilate", "max_groups",
                      "stem_kernel", "var_op", "gates", "var_nl", "var_ks", "var_group" } do
  if nas.args[key] ~= nil then space_options[key] = nas.args[key] end
end
local space = nas.space(space_options)

-- 1. The hypernetwork.
local smash_options = {}
for _, key in ipairs{ "hidden_growth", "hidden_layers", "lr", "beta1", "beta2", "eps", "weight_decay", "cosine",
                      "anneal_kernels", "init_seed", "z" } do
  if nas.args[key] ~= nil then smash_options[key] = nas.args[key] end
end
local smash = nas.surrogate("smash", smash_options)
local timing = {}
local t0 = nas.clock()
local checkpoint = nas.arg("checkpoint", "")
local fit_curves = {}
if checkpoint ~= "" then
  smash:load(checkpoint)
  nas.log("loaded the SMASH hypernetwork from " .. checkpoint)
else
  fit_curves = smash:fit{ space = space, data = data, epochs = opt("fit_epochs"), steps = opt("fit_steps"),
                          batch = opt("batch") }
  nas.log("SMASH hypernetwork saved to " .. smash:save("smash.ckpt"))
end
timing.fit = nas.clock() - t0

-- 2. SMASH's search: random candidates, then perturbations of the best and a Markov chain.
local trace = {}
nas.on_candidate(function(event, values)
  if event == "perturb" then trace[#trace + 1] = values end
end)
local t1 = nas.clock()
local search_options = { candidates = opt("candidates"), perturbations = opt("perturbations"), chain = opt("chain"),
                         keep = nas.arg("keep", 10), batch = nas.arg("score_batch", 1) }
for _, key in ipairs{ "p", "temperature", "starts" } do
  if nas.args[key] ~= nil then search_options[key] = nas.args[key] end
end
local top = nas.strategy("perturb", search_options):run{ surrogate = smash, space = space, data = data,
                                                         eval_images = opt("eval_images"), eval_batch = 250 }
nas.on_candidate(nil)
timing.search = nas.clock() - t1
assert(#top > 0, "the search returned no architecture")

print(string.format("\n%-4s %-8s %10s  %s", "rank", "score", "params", "architecture"))
for i, c in ipairs(top) do print(string.format("%-4d %-8.4f %10d  %s", i, c.score, c.params, c.arch)) end

-- 3. The winner and a random architecture, trained from scratch with one recipe.
local recipe = { epochs = opt("train_epochs"), epoch_steps = opt("train_epoch_steps"), batch = 64,
                 valid_images = nas.arg("train_valid_images", 2000), test_images = nas.arg("test_images", 0) }
local function train(arch)
  return nas.train{ arch = arch, space = space, data = data, epochs = recipe.epochs, epoch_steps = recipe.epoch_steps,
                    batch = recipe.batch, valid_images = recipe.valid_images, test_images = recipe.test_images }
end
local t2 = nas.clock()
local winner = train(top[1].arch)
print(string.format("\nwinner trained from scratch: test accuracy %.2f%% (%d parameters, SMASH score %.4f)",
  100 * winner.test_accuracy, winner.params, top[1].score))
local baseline = train(space:sample(1)[1])
print(string.format("random architecture of the same space, same recipe: test accuracy %.2f%% (%d parameters)",
  100 * baseline.test_accuracy, baseline.params))
timing.train = nas.clock() - t2

-- 4. Plots and the report.
local plots = {}
if fit_curves.loss then
  plots[#plots + 1] = nas.plot{ file = "smash_loss.png", title = "SMASH hypernetwork: a random architecture per batch",
    xlabel = "step", ylabel = "cross-entropy", series = { { name = "loss", x = fit_curves.step, y = fit_curves.loss } } }
end
local key = smash:key{ data = data, batch = 250, images = opt("eval_images") }
local px, py, scored = {}, {}, 0
for _, row in ipairs(nas.evaluations()) do
  if row.surrogate == key and row.params then
    px[#px + 1] = row.params; py[#py + 1] = row.score; scored = scored + 1
  end
end
local vs_params = "-"
if #px > 1 then
  vs_params = string.format("Spearman %.3f, Kendall %.3f", nas.metrics.spearman(px, py), nas.metrics.kendall(px, py))
  plots[#plots + 1] = nas.plot{ file = "score_vs_params.png",
    title = "SMASH score against parameter count (" .. vs_params .. ")", xlabel = "parameters",
    ylabel = "validation accuracy, generated weights", logx = true,
    series = { { name = "candidates", x = px, y = py, style = "points" } } }
end
local tx, ts, tb, ax, ay = {}, {}, {}, {}, {}
for i, v in ipairs(trace) do
  tx[i] = i; ts[i] = v.score; tb[i] = v.best
  if v.accepted == 1 then ax[#ax + 1] = i; ay[#ay + 1] = v.score end
end
if #trace > 0 then
  plots[#plots + 1] = nas.plot{ file = "perturbation_trace.png",
    title = "Perturbations of the best, then the Markov chain", xlabel = "step", ylabel = "SMASH score",
    series = { { name = "proposal", x = tx, y = ts, style = "points" }, { name = "best so far", x = tx, y = tb },
               { name = "accepted", x = ax, y = ay, style = "points" } } }
end
local cx, cw, cb = {}, {}, {}
for i, v in ipairs(winner.valid_accuracy) do cx[i] = i * math.max(recipe.epoch_steps, 1); cw[i] = v end
for i, v in ipairs(baseline.valid_accuracy) do cb[i] = v end
plots[#plots + 1] = nas.plot{ file = "winner_curve.png", title = "Trained from scratch: validation accuracy",
  xlabel = recipe.epoch_steps > 0 and "step" or "epoch", ylabel = "accuracy",
  series = { { name = "winner", x = cx, y = cw, style = "linespoints" },
             { name = "random architecture", x = cx, y = cb, style = "linespoints" } } }

local accepted = 0
for _, v in ipairs(trace) do accepted = accepted + (v.accepted == 1 and 1 or 0) end
local report = {
  "# SMASH search", "",
  string.format("Data %s; space `smash` (N = %d, N_max = %d, widening %d, depth_compression %d, %d-%d layers per block); preset `%s`; seed %d.",
    data_name, opt("N"), opt("N_max"), opt("width"), opt("depth_compression"), opt("min_layers"), opt("max_layers"),
    preset_name, nas.seed), "",
  string.format("- hypernetwork: %.0f s%s", timing.fit, checkpoint ~= "" and (" (loaded " .. checkpoint .. ")") or
    string.format(", %d steps of batch %d", fit_curves.step and #fit_curves.step or 0, opt("batch"))),
  string.format("- search: %.0f s; %d architectures scored (%d random, then %d perturbations and %d chain steps; %d proposals accepted)",
    timing.search, scored, opt("candidates"), opt("perturbations"), opt("chain"), accepted),
  string.format("- SMASH score against parameter count over the scored architectures: %s", vs_params),
  string.format("- training from scratch: %.0f s for two networks (%d epochs of %d steps, batch %d)", timing.train,
    recipe.epochs, recipe.epoch_steps, recipe.batch), "",
  "## Result", "",
  "| network | SMASH score | test accuracy | parameters |", "| --- | --- | --- | --- |",
  string.format("| winner | %.4f | %.2f%% | %d |", top[1].score, 100 * winner.test_accuracy, winner.params),
  string.format("| random of the same space | | %.2f%% | %d |", 100 * baseline.test_accuracy, baseline.params), "",
  "Winner:", "", "```", top[1].arch, "```", "",
  "## Top candidates", "", "| rank | SMASH score | parameters | architecture |", "| --- | --- | --- | --- |" }
for i, c in ipairs(top) do
  report[#report + 1] = string.format("| %d | %.4f | %d | `%s` |", i, c.score, c.params, (c.arch:gsub("|", "\\|")))
end
report[#report + 1] = ""
report[#report + 1] = "## Plots"
report[#report + 1] = ""
for _, p in ipairs(plots) do report[#report + 1] = string.format("![](%s)", p:match("[^/]+$")) end
print(string.format("\nwinner: test accuracy %.2f%% (random of the same space %.2f%%)", 100 * winner.test_accuracy,
  100 * baseline.test_accuracy))
print("report: " .. nas.write_file("report.md", table.concat(report, "\n") .. "\n"))
