"""What is on disk: model references, blobs, manifests, GGUF validation, downloads, imports."""
