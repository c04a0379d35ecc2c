"""neuralab: hands-on deep learning with CNNs and LSTMs, on PyTorch.

The package mirrors the workshop: ``mechanics`` (the arithmetic by hand, NumPy),
``data`` (images and series), ``models`` (one file per architecture), ``training``
(the trainer, checkpoints, devices), ``forecasting``, ``reports``, ``cli`` and ``web``.
"""

__version__ = "0.1.0"

from neuralab.errors import NeuralabError

__all__ = ["NeuralabError", "__version__"]
