"""Sphinx configuration of the documentation site: the Markdown pages of
docs/ (and, included, parts of README.md and benchmarks/README.md) read by
MyST, the API reference made by autodoc from the docstrings of the smartbus
package that Python imports (.ci/docs builds one from this tree)."""

import os
import sys

import smartbus

# the extension of this site (docs/_ext)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ext"))

project = "smartbus"
author = "The smartbus authors"
copyright = "the smartbus authors"
version = release = smartbus.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "smartbus_reference"]
source_suffix = {".md": "markdown"}
root_doc = "index"

# anchors for the headings of levels 1-3, as GitHub makes them: the pages
# link to sections with [text](#a-heading) and [text](page.md#a-heading)
myst_heading_anchors = 3

autodoc_member_order = "bysource"

# every cross-reference into smartbus must resolve.  Ignored: classes of the
# standard library (qualified names outside smartbus: the build is offline,
# with no inventory of Python's docs), the stub's ``Buffer``
# (typing_extensions), and private type aliases of our modules, named in
# signatures but not documented
nitpicky = True
nitpick_ignore_regex = [
    ("py:class", r"(?!smartbus\.)\w+\.[\w.]+|Buffer"),
    ("py:class", r"smartbus\.[\w.]*\._\w+"),
]

html_theme = "furo"
html_title = "smartbus %s" % release
