"""Document parsers: one module per format, each returning pages of text with structure."""
