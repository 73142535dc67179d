-- Cost of the `smash` surrogate per architecture: generating a network's weights (the
-- hypernetwork's forward pass and the slicing of the learned kernels) and running it on one
-- small batch, next to one hypernetwork training step (a new architecture, forward and backward
-- through the network and the hypernetwork) and one plain training step of the same networks,
-- at the CPU preset of smash_search.lua, the space's defaults and the authors' CIFAR size.
--
--   hypernas run scripts/bench/smash_generation.lua --experiment smash-generation --threads 1
--     [--set archs=10 --set images=32 --set data=cifar10]
local data = nas.dataset{ name = nas.arg("data", "cifar10") }
local archs, images = nas.arg("archs", 10), nas.arg("images", 32)
local spaces = {
  { label = "smash_search.lua cpu preset (N=4, N_max=8, width 1, dc 2, 1-3 layers)",
    options = { N = 4, N_max = 8, width = 1, depth_compression = 2, min_layers = 1, max_layers = 3 } },
  { label = "space defaults (N=8, N_max=32, width 2, 2-4 layers)", options = {} },
  { label = "the authors' CIFAR size (N=8, N_max=64, width 4, 4-12 layers)",
    options = { N = 8, N_max = 64, width = 4, min_layers = 4, max_layers = 12 } },
}
local rows = { "| space | mean MACs per image | s per architecture (generate + " .. images .. " images) | s per hypernetwork step (batch 32) | s per plain training step (batch 32) | ratio |",
               "| --- | --- | --- | --- | --- | --- |" }
for _, sp in ipairs(spaces) do
  local o = { name = "smash", data = data }
  for k, v in pairs(sp.options) do o[k] = v end
  local space = nas.space(o)
  local pool = space:sample(archs)
  local flops = 0
  for _, a in ipairs(pool) do flops = flops + space:stats(a).flops end
  local smash = nas.surrogate("smash")
  smash:fit{ space = space, data = data, epochs = 1, steps = 2, batch = 32 }  -- builds the model
  local t1 = nas.clock()
  smash:fit{ space = space, data = data, epochs = 1, steps = 3, batch = 32 }
  local step = (nas.clock() - t1) / 3
  local t2 = nas.clock()
  smash:score{ space = space, data = data, archs = pool, images = images, batch = images, reuse = false }
  local per = (nas.clock() - t2) / archs
  local t3 = nas.clock()
  for i = 1, 3 do
    nas.train{ arch = pool[i], space = space, data = data, epochs = 1, max_steps = 3, batch = 32, valid_images = 32,
               test_images = 32, reuse = false }
  end
  local plain = (nas.clock() - t3) / 9
  rows[#rows + 1] = string.format("| %s | %.1f M | %.3f | %.2f | %.2f | %.1f |", sp.label, flops / archs / 1e6, per,
    step, plain, step / plain)
  print(rows[#rows])
end
print("table: " .. nas.write_file("smash_generation.md", table.concat(rows, "\n") .. "\n"))
