"""Storage: the schema, its migrations, and the queries the service and the CLI make."""
