"""flwr_declearn DP-SGD example: sample-level differential privacy on every client."""
