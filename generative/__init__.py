"""Generative labs: autoencoders, VAEs, GANs (to come)."""
