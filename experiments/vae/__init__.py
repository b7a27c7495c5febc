"""The VAE experiment of the paper (its Section 6): VAEs trained with the perceptual losses on MNIST and
celebA, in Flax NNX, with conversion from and to the original PyTorch models (docs/reference.md §11)."""
