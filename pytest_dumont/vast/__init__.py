"""The Vast.ai API: the HTTP client, offer filters, retry policies and null-tolerant models."""

DEFAULT_API_URL = "https://console.vast.ai"  # Vast.ai's own API: the default of --dumont-api-url and the commands
