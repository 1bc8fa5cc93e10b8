"""Real datasets: the shipped Fashion-MNIST sample and the competition layout writer."""

from ._competition import CompetitionLayout, export_competition_layout
from ._sample import FASHION_MNIST_CLASSES, load_fashion_mnist_sample

__all__ = [
    "FASHION_MNIST_CLASSES",
    "CompetitionLayout",
    "export_competition_layout",
    "load_fashion_mnist_sample",
]
