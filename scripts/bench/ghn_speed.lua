-- Run: hypernas run scripts/bench/ghn_speed.lua --threads 1 [--set cells=5 --set channels=16]
-- Prints one markdown row: cells/channels, GHN fit step (s), ordinary training step (s), ratio,
-- seconds per scored architecture (500 validation images), architectures scored per second.
-- GHN speed: fit steps and scoring rate on nb201 (cells_per_stage=1, channels=8), Fashion-MNIST.
local data = nas.dataset{ name = "fashion-mnist" }
local space = nas.space{ name = "nb201", cells_per_stage = nas.arg("cells", 1), channels = nas.arg("channels", 8), data = data }
local ghn = nas.surrogate("ghn", {})
local t = nas.clock()
ghn:fit{ space = space, data = data, steps = 100, batch = 64 }
local fit = (nas.clock() - t) / 100
local archs = space:sample(100)
t = nas.clock()
ghn:score{ space = space, data = data, archs = archs, images = 500, batch = 250 }
local score = (nas.clock() - t) / 100
t = nas.clock()
nas.train{ arch = archs[1], space = space, data = data, epochs = 1, max_steps = 100, valid_images = 250, test_images = 250, augment = false, reuse = false }
local train = (nas.clock() - t) / 100
print(string.format("| %d/%d | %.3f | %.3f | %.2f | %.3f | %.1f |", nas.arg("cells", 1), nas.arg("channels", 8), fit, train, fit / train, score, 1 / score))
