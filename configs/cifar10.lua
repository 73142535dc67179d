-- CIFAR-10 (JPEG image folder unpacked by scripts/setup.sh), standard crop + flip augmentation.
return { name = "cifar10", valid = 5000, split_seed = 0, crop_padding = 4, flip = true }
