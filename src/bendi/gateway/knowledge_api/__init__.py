"""Knowledge-base HTTP API: manage bases and documents, search and ask with citations."""
