"""The functions' glue: one module per deployed function (parse the request, call shared/, respond)."""
