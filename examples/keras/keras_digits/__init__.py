"""flwr_declearn example: a Keras model trained with server-side Yogi (FedYogi)."""
