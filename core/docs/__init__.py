"""Chat with your documents: collections of local files, indexed in SQLite (full text with FTS5/BM25, plus
embeddings from an embedding GGUF run by llama.cpp in a child process), searched with both ranked together."""
