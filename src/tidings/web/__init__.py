"""The admin web UI: server-rendered pages, signed-cookie sessions, no build step."""
