"""flwr_declearn example: torch, Keras, haiku and plain-JAX clients train one MLP together."""
