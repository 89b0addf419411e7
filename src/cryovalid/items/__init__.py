"""One module per validation item; each exposes one function from inputs to an ItemResult."""
