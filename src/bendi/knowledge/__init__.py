"""The RAG pipeline, usable without HTTP: parse, chunk, embed, index, search, answer with citations."""
