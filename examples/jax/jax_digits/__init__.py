"""flwr_declearn example: a plain-JAX model (apply function + params pytree) with FedAvgM."""
