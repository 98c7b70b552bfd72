"""A small Django project on ``cohrt_sync.django``: login by name, a chat page, the routes."""
