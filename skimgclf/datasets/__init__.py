"""Real datasets: the shipped Fashion-MNIST sample, the full sets from disk, the layout writer."""

from ._competition import CompetitionLayout, export_competition_layout
from ._official import load_fashion_mnist, load_mnist
from ._sample import FASHION_MNIST_CLASSES, load_fashion_mnist_sample

__all__ = [
    "FASHION_MNIST_CLASSES",
    "CompetitionLayout",
    "export_competition_layout",
    "load_fashion_mnist",
    "load_fashion_mnist_sample",
    "load_mnist",
]
