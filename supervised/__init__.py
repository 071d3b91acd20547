"""Supervised labs: perceptrons, MLPs, CNNs, RNNs, transfer learning."""
