"""Tiny models gain nothing from intra-op threads, and the CI machine has two cores: use one thread."""

import torch

torch.set_num_threads(1)
