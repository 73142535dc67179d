-- Cost of the `adwp` surrogate per architecture: generating a discrete architecture's weights
-- (every GeneratingBlock of the convs it uses) and running it on one small batch, next to one
-- Stage 1 step on the relaxed network, for NAS-Bench-201 and the intensive darts space at their
-- published sizes and at the reduced ones the CPU scripts use.
--
--   hypernas run scripts/bench/adwp_generation.lua --experiment adwp-generation --threads 2
--     [--set archs=10 --set images=32 --set data=cifar10]
local data = nas.dataset{ name = nas.arg("data", "cifar10") }
local archs, images = nas.arg("archs", 10), nas.arg("images", 32)
local spaces = {
  { label = "nb201 N=5 C=16 (NAS-Bench-201)", options = { name = "nb201", cells_per_stage = 5, channels = 16 } },
  { label = "nb201 N=1 C=8", options = { name = "nb201", cells_per_stage = 1, channels = 8 } },
  { label = "darts macro 8 cells C=16, intensive K=6", options = { name = "darts", macro = true, layers = 8,
    channels = 16, intensive = nas.config_file("adwp-intensive.json") } },
  { label = "darts macro 5 cells C=8, intensive K=6", options = { name = "darts", macro = true, layers = 5,
    channels = 8, intensive = nas.config_file("adwp-intensive.json") } },
}
local rows = { "| space | s per architecture (generate + " .. images .. " images) | s per Stage 1 step (batch 32) |",
               "| --- | --- | --- |" }
for _, sp in ipairs(spaces) do
  local o = { data = data }
  for k, v in pairs(sp.options) do o[k] = v end
  local space = nas.space(o)
  local adwp = nas.surrogate("adwp")
  adwp:fit{ space = space, data = data, epochs = 1, steps = 3, batch = 32 }  -- builds the model
  local t1 = nas.clock()
  adwp:fit{ space = space, data = data, epochs = 1, steps = 3, batch = 32 }
  local step = (nas.clock() - t1) / 3
  local pool = space:sample(archs)
  local t2 = nas.clock()
  adwp:score{ space = space, data = data, archs = pool, images = images, batch = images, reuse = false }
  local per = (nas.clock() - t2) / archs
  rows[#rows + 1] = string.format("| %s | %.3f | %.2f |", sp.label, per, step)
  print(rows[#rows])
end
print("table: " .. nas.write_file("adwp_generation.md", table.concat(rows, "\n") .. "\n"))
