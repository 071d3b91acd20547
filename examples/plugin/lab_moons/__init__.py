"""lab-moons: an example third-party lab package for the lab framework (`lab run moons-mlp`)."""
