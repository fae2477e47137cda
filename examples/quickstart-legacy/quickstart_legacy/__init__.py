"""flwr_declearn quickstart on Flower's legacy API (NumPyClient + Strategy)."""
