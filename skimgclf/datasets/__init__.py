"""Real datasets: the shipped Fashion-MNIST sample, the full sets from disk, colour photos made
of their items on real backgrounds, and the writers of competition and class-folder layouts."""

from ._competition import CompetitionLayout, export_competition_layout
from ._official import load_fashion_mnist, load_mnist
from ._photos import export_photo_folder, load_photos_sample, make_photos
from ._sample import FASHION_MNIST_CLASSES, load_fashion_mnist_sample

__all__ = [
    "FASHION_MNIST_CLASSES",
    "CompetitionLayout",
    "export_competition_layout",
    "export_photo_folder",
    "load_fashion_mnist",
    "load_fashion_mnist_sample",
    "load_mnist",
    "load_photos_sample",
    "make_photos",
]
