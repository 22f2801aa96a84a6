"""The investor client app: server-rendered pages served by the API process under /app."""
