"""DiNNO's multi-robot reinforcement-learning experiment: predators learn to catch a prey with PPO."""
