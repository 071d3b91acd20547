"""Gymnasium RL agents: tabular, own PyTorch agents, Stable-Baselines3 (to come)."""
