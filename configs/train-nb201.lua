-- NAS-Bench-201's training recipe (Dong & Yang, ICLR 2020): 200 epochs of SGD with Nesterov
-- momentum 0.9, lr 0.1 cosine-annealed, weight decay 5e-4, batch 256.
return { epochs = 200, batch = 256, lr = 0.1, momentum = 0.9, nesterov = true,
         weight_decay = 5e-4, schedule = "cosine" }
