-- A short CPU recipe for trying things out: SGD, Nesterov, cosine schedule.
return { epochs = 3, batch = 64, lr = 0.05, momentum = 0.9, nesterov = true,
         weight_decay = 5e-4, schedule = "cosine" }
