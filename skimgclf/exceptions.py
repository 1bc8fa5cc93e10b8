"""Exceptions raised by skimgclf."""


class ImageLoadError(ValueError):
    """An image could not be loaded into the output array.

    Raised by :class:`skimgclf.ImageFolderLoader` for missing, unreadable, corrupt or unsafe
    image files, for decompression bombs and for images whose sizes disagree. The message
    names the file, its row in ``X`` and, where there is one, the fix. It subclasses
    :class:`ValueError` because the cause is always the data handed to the loader.
    """
