"""Data stewards: the review queue, decisions that hold across runs, and the web app (`mdm serve`)."""
