-- Fashion-MNIST, 5,000 training images held out for validation as in the GHN paper.
return { name = "fashion-mnist", valid = 5000, split_seed = 0 }
