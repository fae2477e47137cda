"""flwr_declearn example: federated ILQL on offline token episodes."""
