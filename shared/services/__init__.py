"""What the functions do, above the adapters and below the HTTP glue: one module per use case."""
