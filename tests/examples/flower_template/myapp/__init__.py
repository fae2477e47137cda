"""myapp: A Flower / PyTorch app."""
