"""Placeholder: ImageFolderLoader is being written (issue 2)."""


class ImageFolderLoader:
    pass


def read_class_folders(root):
    raise NotImplementedError
