"""careloop's HTTPS server: gunicorn embedded, terminating TLS itself (see `careloop serve`)."""
