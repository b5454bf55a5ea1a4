"""One module per op: its validation, torch.library registration and autograd."""
