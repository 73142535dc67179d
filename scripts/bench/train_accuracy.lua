-- Test accuracy of NAS-Bench-201 networks trained from scratch, on the datasets given.
--
--   hypernas run scripts/bench/train_accuracy.lua --experiment train-accuracy \
--     --set datasets=fashion-mnist,cifar10 --set epochs=2 --set cells=1 --set channels=16
--
-- Prints (and writes to train_accuracy.md) one markdown row per dataset with the recipe.
local arch = nas.arg("arch", "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
local epochs = nas.arg("epochs", 2)
local rows = {}
for name in nas.arg("datasets", "fashion-mnist,cifar10"):gmatch("[^,]+") do
  local data = nas.dataset{ name = name }
  local space = nas.space{ name = "nb201", cells_per_stage = nas.arg("cells", 1),
                           channels = nas.arg("channels", 16), data = data }
  local recipe = nas.preset("train-short")
  recipe.epochs, recipe.arch, recipe.space, recipe.data = epochs, arch, space, data
  recipe.batch = nas.arg("batch", 64)
  local r = nas.train(recipe)
  rows[#rows + 1] = string.format("| %s | %d/%d/%d | %d | %d | %.2f%% | %.2f%% | %.0f s | `%s` |",
    name, data:size("train"), data:size("valid"), data:size("test"), r.params, #r.train_loss,
    100 * r.valid_accuracy[#r.valid_accuracy], 100 * r.test_accuracy, r.seconds, r.recipe)
  print(rows[#rows])
end
local text = table.concat({
  string.format("Architecture `%s` (nb201, cells_per_stage=%d, channels=%d).", (arch:gsub("|", "\\|")),
    nas.arg("cells", 1), nas.arg("channels", 16)), "",
  "| data | train/valid/test | params | epochs | valid acc | test acc | time | recipe |",
  "| --- | --- | --- | --- | --- | --- | --- | --- |", table.concat(rows, "\n"), "" }, "\n")
print(text)
nas.write_file("train_accuracy.md", text)
