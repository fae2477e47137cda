"""flwr_declearn quickstart: a Flower app training an MLP on non-IID digits."""
