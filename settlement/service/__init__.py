"""The application service: commands, their handlers and the writer that commits them."""
