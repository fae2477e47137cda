"""flwr_declearn example: federated fine-tuning of a pretrained haiku MLP's head."""
