"""Griffe extension: render the reST markup of numpydoc docstrings as Markdown.

The docstrings follow numpydoc, whose cross-references (``:class:`Pipeline```) and literal
blocks (``example::``) are reST; mkdocstrings would print them verbatim.
"""

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|data|mod|obj|exc|const):`(~?)([^`]+)`")
_LITERAL_BLOCK = re.compile(r"(\S)::$", re.MULTILINE)


def rst_to_markdown(text):
    """Turn reST roles into inline code and ``text::`` into ``text:``."""
    text = _ROLE.sub(lambda m: f"`{m[2].rsplit('.', 1)[-1] if m[1] else m[2]}`", text)
    return _LITERAL_BLOCK.sub(r"\1:", text)


class RstMarkup(griffe.Extension):
    """Rewrite every docstring once griffe has read it."""

    def on_instance(self, *, obj, **kwargs):
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
