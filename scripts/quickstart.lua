-- Quickstart: random search over NAS-Bench-201 cells on Fashion-MNIST, each candidate scored
-- by a short burst of SGD training (the GHN paper's early-stopping baseline, plugin `sgd`),
-- then the winner trained from scratch and tested. A few minutes on 2 CPU cores.
--
--   hypernas run scripts/quickstart.lua --set candidates=40 --set epochs=2
--
-- Rerunning the same experiment reuses every score and training already recorded.

local data  = nas.dataset(nas.preset("fashion-mnist"))
local preset = nas.preset("nb201-small")
preset.channels = nas.arg("channels", preset.channels)
preset.cells_per_stage = nas.arg("cells", preset.cells_per_stage)
preset.data = data
local space = nas.space(preset)

local scorer = nas.surrogate("sgd", { steps = nas.arg("steps", 40), batch = 64 })
local keep = nas.arg("keep", 5)
local top = nas.strategy("random", { candidates = nas.arg("candidates", 30), keep = keep })
  :run{ surrogate = scorer, space = space, data = data, eval_images = nas.arg("eval_images", 1000) }

print(string.format("\n%-4s %-96s %8s %9s", "rank", "architecture", "score", "params"))
local csv = { "rank,arch,score,params,flops" }
for i, c in ipairs(top) do
  print(string.format("%-4d %-96s %8.4f %9d", i, c.arch, c.score, c.params))
  csv[#csv + 1] = string.format('%d,"%s",%.6f,%d,%d', i, c.arch, c.score, c.params, c.flops)
end
nas.write_file("top.csv", table.concat(csv, "\n") .. "\n")

local recipe = nas.preset("train-short")
recipe.epochs = nas.arg("epochs", 2)
recipe.arch, recipe.space, recipe.data = top[1].arch, space, data
local best = nas.train(recipe)
print(string.format("\nwinner %s\n  parameters %d, test accuracy %.2f%% after %d epochs (%.0f s)%s",
  best.arch, best.params, 100 * best.test_accuracy, #best.train_loss, best.seconds,
  best.reused and ", reused from an earlier run" or ""))
print("results in " .. nas.results_dir())
