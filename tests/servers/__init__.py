"""ASGI applications that the real-server tests run in subprocesses."""
