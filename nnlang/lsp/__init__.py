"""``nnlang lsp``: a language server for ``.nn`` files (:mod:`nnlang.lsp.server`, over
pygls), answering from :mod:`nnlang.lsp.analysis`."""
