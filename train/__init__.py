"""hmrt.train: torch body layer, models, losses, synthetic/real data, trainer and evaluation."""
